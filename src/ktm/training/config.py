"""`TrainConfig`: the optimisation recipe, validated on creation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import KTMError

SCHEDULES = ("constant", "linear", "cosine")
DEFAULT_LR = 1e-3


@dataclass
class TrainConfig:
    """How to train. ``batch_size`` is examples per optimizer step across all processes.

    Attributes:
        steps: optimizer steps.
        batch_size: examples per step (split over ``grad_accum`` micro-batches and processes).
        grad_accum: micro-batches per step.
        lr: learning rate of the LoRA weights (``None``: :data:`DEFAULT_LR`; ``ktm train``'s
            recipe lowers it when the merger starts pre-trained, see
            :meth:`ktm.runs.RunConfig.resolved`).
        merger_lr: learning rate of the merger (``None``: same as ``lr``).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up from 0.
        schedule: ``constant`` | ``linear`` | ``cosine`` decay after warm-up.
        max_grad_norm: gradient clipping (0 disables).
        eval_every: evaluate every N steps (0: only at the end).
        save_every: checkpoint every N steps (0: only at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        seed: seed of data order, dropout and initialisation.
        reconstruction_weight: weight of the auxiliary reconstruction loss (the model
            regenerates each compressed prompt from its merged prefix); 0 turns it off.
        reconstruction_max_tokens: reconstruct at most this many prompt tokens (None: all).
        distill_weight: weight of distillation from a teacher model (see ``train(teacher=…)``).
        distill_blocks: distil hidden states at every compressed position too (against the
            teacher's state at the last token of each block), not only at the answer.
        progress: show a progress bar.
    """

    steps: int = 300
    batch_size: int = 16
    grad_accum: int = 1
    lr: float | None = None
    merger_lr: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 10
    schedule: str = "cosine"
    max_grad_norm: float = 1.0
    eval_every: int = 0
    save_every: int = 50
    keep_checkpoints: int = 2
    seed: int = 0
    reconstruction_weight: float = 0.0
    reconstruction_max_tokens: int | None = None
    distill_weight: float = 1.0
    distill_blocks: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise KTMError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("warmup_steps", "eval_every", "save_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise KTMError(f"{name} must be an integer >= 0, got {value!r}")
        if self.keep_checkpoints < 1:
            raise KTMError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints!r}")
        if self.batch_size % self.grad_accum:
            raise KTMError(
                f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}"
            )
        for name in ("lr", "merger_lr"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise KTMError(f"{name} must be a positive number, got {value!r}")
        if self.schedule not in SCHEDULES:
            raise KTMError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.reconstruction_weight < 0:
            raise KTMError(f"reconstruction_weight must be >= 0, got {self.reconstruction_weight}")
        if self.distill_weight < 0:
            raise KTMError(f"distill_weight must be >= 0, got {self.distill_weight}")
        if self.reconstruction_max_tokens is not None and self.reconstruction_max_tokens < 1:
            raise KTMError("reconstruction_max_tokens must be >= 1")
        if self.max_grad_norm < 0 or self.weight_decay < 0:
            raise KTMError("max_grad_norm and weight_decay must be >= 0")

    @property
    def base_lr(self) -> float:
        """The LoRA learning rate in use: ``lr``, or :data:`DEFAULT_LR` when unset."""
        return DEFAULT_LR if self.lr is None else self.lr

    def lr_factor(self, step: int) -> float:
        """Multiplier of the base learning rates at optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.schedule == "constant":
            return 1.0
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        if self.schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
