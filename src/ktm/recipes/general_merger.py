"""General mergers: a merger + LoRA pre-trained once per base model and K on the general
corpus (``ktm pretrain --corpus general``), that task runs start from instead of pre-training
on their own prompts.

They are looked up in the folders ktm ships (``ktm/pretrained/``) and in those named by
``$KTM_MERGERS`` (``os.pathsep``-separated), each holding saved model folders. A task run at
K > 1 with the MLP merger and no ``--init-from`` starts from the one that fits its base model,
K, merger and LoRA shape; ``--init-from none`` opts out.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..config import KTMConfig
from ..errors import KTMError
from ..model import CONFIG_NAME
from .run_folder import read_json

BUNDLED = Path(__file__).resolve().parents[1] / "pretrained"
ENV = "KTM_MERGERS"
DEFAULT_HIDDEN_FACTOR = next(
    f.default for f in dataclasses.fields(KTMConfig) if f.name == "merger_hidden_factor"
)
NONE = "none"  # --init-from none: no general merger, pre-train on the task's prompts instead


def merger_folders() -> list[Path]:
    """Folders searched for general mergers: ``$KTM_MERGERS`` first, then the bundled ones."""
    extra = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    return [p for p in [*extra, BUNDLED] if p.is_dir()]


def is_general_merger(path: str | Path) -> bool:
    """Whether ``path`` lies in one of the :func:`merger_folders`."""
    path = Path(path).resolve()
    return any(path.is_relative_to(f.resolve()) for f in merger_folders())


def shape(cfg: KTMConfig) -> tuple:
    """What a saved merger + LoRA must share with a run to start it: K, the merger's kind,
    width, context, layers and norm, and the LoRA's rank, scale and targets."""
    return (cfg.k, cfg.merger, cfg.hidden_factor, cfg.merger_context, cfg.merger_layers,
            cfg.merger_norm, cfg.lora_r, cfg.lora_alpha, cfg.lora_targets,
            cfg.lora_lm_head)  # fmt: skip


def _same_base(saved: str, model: str) -> bool:
    if saved == model:
        return True
    a, b = Path(saved), Path(model)
    return a.is_dir() and b.is_dir() and a.resolve() == b.resolve()


def general_mergers(model: str) -> list[tuple[Path, KTMConfig]]:
    """Every readable saved model folder in :func:`merger_folders` whose base is ``model``,
    with its config."""
    found = []
    for folder in merger_folders():
        for sub in sorted(p for p in folder.iterdir() if (p / CONFIG_NAME).is_file()):
            try:
                meta = read_json(sub / CONFIG_NAME, "ktm config")
                saved = KTMConfig.from_dict(meta.get("config", {}))
            except KTMError:
                continue  # an unreadable folder is not a candidate
            if _same_base(str(meta.get("base_model", "")), model):
                found.append((sub, saved))
    return found


def find_general_merger(model: str, cfg: KTMConfig) -> tuple[Path, KTMConfig] | None:
    """The general merger for base ``model`` that fits ``cfg``'s shape, with ``cfg`` as the
    run takes it; or None.

    A run left at the default merger width takes the width of a general merger that differs
    from it in nothing else: the width is the merger's to choose (the K = 8 one is narrower,
    to ship under the package's size limit), and the user did not choose one.
    """
    found = general_mergers(model)
    exact = next((p for p, saved in found if shape(saved) == shape(cfg)), None)
    if exact is not None:
        return exact, cfg
    if cfg.merger_hidden_factor != DEFAULT_HIDDEN_FACTOR:
        return None  # a width chosen by hand is kept
    for path, saved in found:
        adopted = dataclasses.replace(cfg, merger_hidden_factor=saved.merger_hidden_factor)
        if shape(saved) == shape(adopted):
            return path, adopted
    return None


def near_misses(model: str, cfg: KTMConfig) -> list[str]:
    """How the general mergers for ``model`` at this K differ from ``cfg`` (for a note)."""
    names = ("k", "merger", "hidden_factor", "merger_context", "merger_layers", "merger_norm",
             "lora_r", "lora_alpha", "lora_targets", "lora_lm_head")  # fmt: skip
    out = []
    for path, saved in general_mergers(model):
        if saved.k == cfg.k:
            diff = [f"{n} {a!r} (yours {b!r})"
                    for n, a, b in zip(names, shape(saved), shape(cfg)) if a != b]  # fmt: skip
            out.append(f"{path.name}: " + ", ".join(diff))
    return out
