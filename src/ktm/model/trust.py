"""What a saved model folder may make ktm load on its own.

A folder's ``ktm_config.json`` names its base model, and its files may be links. Loading
must not let a downloaded folder pull in arbitrary files or downloads, so:

- the base model a folder names is used only if it is the bundled default, a hub id already
  in the local Hugging Face cache (nothing is downloaded for it), or a local folder under a
  trusted root: the current directory, ktm's cache (``$KTM_CACHE_DIR``) or a folder listed
  in ``$KTM_MODEL_ROOTS`` (``:``-separated). Anything else needs the caller's approval:
  ``from_pretrained(path, base_model=NAME)`` (``--base-model NAME`` on the command line);
- no file of the folder may be a link that leads outside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import KTMError
from .base_models import DEFAULT_MODEL, cache_dir

ROOTS_ENV = "KTM_MODEL_ROOTS"


def trusted_roots() -> list[Path]:
    extra = [Path(p) for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [p.expanduser().resolve() for p in (Path.cwd(), cache_dir(), *extra)]


def check_saved_base(name: object, folder: Path) -> str:
    """``name`` (a saved folder's base model) if ktm may load it without asking; else a
    :class:`KTMError` that says how to approve it."""
    approve = f"pass base_model={name!r} (--base-model on the command line) to use it"
    if not isinstance(name, str) or not name.strip():
        raise KTMError(f"{folder}: its base model {name!r} is not a name; {approve}")
    if name.lower() == DEFAULT_MODEL:
        return name
    local = Path(name).expanduser()
    if local.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        where = local.resolve()
        if not any(where.is_relative_to(root) for root in trusted_roots()):
            raise KTMError(
                f"{folder} names base model {name}, a folder outside the ones ktm trusts (the "
                f"current folder, $KTM_CACHE_DIR, ${ROOTS_ENV}); {approve}"
            )
        return name
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name, local_files_only=True)
    except Exception:  # not in the hub cache: loading it would download
        raise KTMError(
            f"{folder} names base model {name!r}, a hub model not in the local cache; ktm "
            f"does not download a saved folder's base on its own: {approve}"
        ) from None
    return name


def check_links(folder: Path) -> None:
    """Refuse a model folder with a link that leads outside it."""
    root = folder.resolve()
    for item in folder.rglob("*"):
        if item.is_symlink() and not item.resolve().is_relative_to(root):
            raise KTMError(f"{item} links outside the model folder (to {item.resolve()})")
