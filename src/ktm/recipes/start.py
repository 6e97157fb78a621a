"""Where a run's model starts: a saved model, a run folder, or a training checkpoint.

The model layer loads saved model folders only; this module also knows the run layout: a run
folder's model is in ``<run>/model``, and a training checkpoint ``<run>/checkpoints/step-N``
holds the trainable weights whose shape the run's ``config.json`` states.
"""

from __future__ import annotations

from pathlib import Path

from ..config import KTMConfig
from ..errors import KTMError
from ..model import CONFIG_NAME, KTMModel
from ..model.artifacts import base_info, check_base, check_same_shape
from ..training.checkpoint import WEIGHTS, load_trainable
from .run_folder import RUN_CONFIG, read_json


def model_folder(path: str | Path) -> Path:
    """A saved model folder, or a run folder whose ``model/`` holds one."""
    path = Path(path)
    return path / "model" if (path / "model" / CONFIG_NAME).is_file() else path


def init_from(model: KTMModel, path: str | Path, lora_only: bool = False) -> None:
    """Start ``model`` from the merger and LoRA of a saved model, a run folder or a training
    checkpoint (see :meth:`KTMModel.init_from`; a checkpoint's shape must match exactly)."""
    path = Path(path)
    if (path / WEIGHTS).is_file():  # a training checkpoint: run/checkpoints/step-N
        run_config = path.parent.parent / RUN_CONFIG
        if not run_config.is_file():
            raise KTMError(f"checkpoint {path} has no run config at {run_config}")
        other = KTMConfig.from_dict(read_json(run_config, "run config")["ktm"])
        check_same_shape(path, model.config, other, widen=False, lora_only=lora_only)
        load_trainable(path, model, lora_only)
        return
    model.init_from(model_folder(path), lora_only=lora_only)


def load_teacher(path: str, student: KTMModel, dtype) -> KTMModel:
    """A frozen teacher for distillation; it must share the student's base model shape."""
    folder = model_folder(path)
    # the teacher must share the student's base: load it on that (the user chose it)
    teacher = KTMModel.from_pretrained(folder, base_model=student.base_model, dtype=dtype)
    check_base(folder, base_info(teacher.causal_lm), base_info(student.causal_lm), "the student")
    return teacher


def say_start(cfg) -> None:
    """One stderr line on where a run's merger starts: a general merger, or why not."""
    import sys

    from .general_merger import is_general_merger, near_misses

    start = cfg.start_from
    if start and is_general_merger(start):
        shape = f"K = {cfg.ktm.k}, merger width {cfg.ktm.hidden_factor}"
        print(f"ktm: starting from the general merger {start} ({shape}; --init-from none: "
              "not from it)", file=sys.stderr)  # fmt: skip
    elif cfg.general_merger_applies and cfg.init_from is None:
        misses = near_misses(cfg.model, cfg.ktm)
        why = f" (near: {'; '.join(misses)})" if misses else ""
        message = (
            f"ktm: no general merger for {cfg.model} at K = {cfg.ktm.k} with this merger and "
            f"LoRA shape{why}; pre-training on the task's prompts instead"
        )
        print(message, file=sys.stderr)
    if cfg.train.raw_anneal_steps and cfg.ktm.k > 1:
        print(f"ktm: raw-to-merged curriculum over the first {cfg.train.raw_anneal_steps} steps "
              "(--raw-anneal-steps 0: none)", file=sys.stderr)  # fmt: skip
