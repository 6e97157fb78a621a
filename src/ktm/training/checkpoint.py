"""Training checkpoints: trainable weights (safetensors), optimizer state, progress.

Each checkpoint is a folder ``checkpoints/step-NNNNNN`` written through a temporary folder
and renamed into place, so the newest complete checkpoint is never a half-written one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch
from torch import nn

from ..errors import KTMError
from ..io_utils import atomic_dir, disk_trouble, read_json, write_json_atomic

WEIGHTS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }


def save_checkpoint(
    folder: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    keep: int,
) -> Path:
    target = folder / f"step-{step:06d}"
    try:
        with atomic_dir(target) as tmp:
            save_file(trainable_state(model), str(tmp / WEIGHTS))
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
            write_json_atomic(tmp / STATE, {"step": step, **state})
    except Exception as e:  # torch and safetensors report a full disk in their own words
        why = disk_trouble(e, folder)
        if why is None:
            raise
        newest = list_checkpoints(folder)
        kept = (f"the newest complete checkpoint, {newest[-1].name}, is intact" if newest
                else "no checkpoint was complete yet")  # fmt: skip
        raise KTMError(
            f"could not write checkpoint {target}: {why}; {kept}; make room, then continue "
            f"with --resume"
        ) from None
    for old in list_checkpoints(folder)[:-keep]:
        # Out of sight first: a kill midway through rmtree would leave a checkpoint with its
        # state but no weights; a hidden ".step-*" folder is what clean_partial removes.
        doomed = old.with_name(f".{old.name}.old")
        shutil.rmtree(doomed, ignore_errors=True)  # a leftover would block the rename
        old.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return target


def save_file(tensors: dict[str, torch.Tensor], path: str) -> None:
    """safetensors' writer (a name of this module, so tests can make a disk fill up)."""
    from safetensors.torch import save_file as write

    write(tensors, path)


def clean_partial(folder: Path) -> list[Path]:
    """Remove checkpoint folders a killed process left half-written (``.step-*.tmp``);
    returns what was removed."""
    if not folder.is_dir():
        return []
    partial = [p for p in folder.iterdir() if p.name.startswith(".step-") and p.is_dir()]
    for p in partial:
        shutil.rmtree(p, ignore_errors=True)
    return partial


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if (m := _STEP_DIR.match(p.name)) and (p / STATE).is_file()
    ]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore weights and optimizer from ``path``; returns its saved state dict."""
    state = read_json(path / STATE, "checkpoint state")
    load_trainable(path, model)
    try:
        opt_state = torch.load(path / OPTIMIZER, weights_only=True, map_location="cpu")
        optimizer.load_state_dict(opt_state)
    except Exception as e:  # torch raises several types for corrupt pickles
        raise KTMError(f"optimizer state {path / OPTIMIZER} is unreadable: {e}") from None
    return state


def load_trainable(path: Path, model: nn.Module, lora_only: bool = False) -> None:
    """Copy a checkpoint's trainable weights into ``model``; they must match exactly.

    With ``lora_only``, the merger's weights are left out on both sides.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        weights = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise KTMError(f"checkpoint weights {path / WEIGHTS} are unreadable: {e}") from None
    params = dict(model.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    if lora_only:
        weights = {n: w for n, w in weights.items() if not n.startswith("merger.")}
        expected = {n for n in expected if not n.startswith("merger.")}
    if set(weights) != expected:
        raise KTMError(
            f"checkpoint {path} holds other trainable weights than this model "
            f"({len(weights)} vs {len(expected)} tensors); was it made with other options?"
        )
    with torch.no_grad():
        for name, value in weights.items():
            if params[name].shape != value.shape:
                raise KTMError(
                    f"checkpoint {path}: {name} has shape {tuple(value.shape)}, "
                    f"the model {tuple(params[name].shape)}"
                )
            params[name].copy_(value)
