"""Config dataclass fields that carry their own help: the one source of every default and
help text. ``ktm``'s command line is generated from them (:mod:`ktm.cli.generate`).

Metadata keys a field may set (all but ``help`` optional):

- ``help``: one line for ``--help``;
- ``flag``: the option's name if not the field's (``data_dir`` → ``--data``);
- ``choices``: the allowed values;
- ``repeat``: a list option given once per value (``--text A --text B``) instead of
  comma-separated;
- ``tasks``: the only tasks the field applies to (a run's saved config leaves it out for the
  others);
- ``positional``: an argument without a flag (a checkpoint folder);
- ``cli``: ``False`` keeps the field off the command line.

A nested config dataclass field is flattened into its own options (under ``title``); an
optional one (``X | None``) is built when one of its options is given, or with
``given_by``, when that option is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

_MISSING: Any = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    help: str,
    default_factory: Any = _MISSING,
    flag: str | None = None,
    choices: Sequence[Any] | None = None,
    repeat: bool = False,
    tasks: Sequence[str] | None = None,
    cli: bool = True,
    positional: bool = False,
) -> Any:
    """A dataclass field with its help text and how the command line shows it."""
    meta: dict[str, Any] = {"help": help, "cli": cli, "repeat": repeat, "positional": positional}
    if flag is not None:
        meta["flag"] = flag
    if choices is not None:
        meta["choices"] = tuple(choices)
    if tasks is not None:
        meta["tasks"] = tuple(tasks)
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def default_of(f: dataclasses.Field) -> Any:
    """The default value of field ``f`` (its factory called), or ``MISSING``."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def applies_to(f: dataclasses.Field, task: str) -> bool:
    """Whether field ``f`` means anything for ``task`` (see the ``tasks`` key)."""
    tasks = f.metadata.get("tasks")
    return tasks is None or task in tasks
