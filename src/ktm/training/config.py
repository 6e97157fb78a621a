"""`TrainConfig`: the optimisation recipe, validated on creation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import KTMError
from ..fields import option

SCHEDULES = ("constant", "linear", "cosine")
DEFAULT_LR = 1e-3
MAX_SEED = 2**32  # torch seeds are 64-bit, and the trainer derives seed * 1_000_003 + step


@dataclass
class TrainConfig:
    """How to train (each field's help says what it does). ``batch_size`` is examples per
    optimizer step across all processes, so the same options give the same run on any
    number of processes."""

    steps: int = option(300, help="optimizer steps")
    batch_size: int = option(16, help="examples per step (over all processes)")
    grad_accum: int = option(1, help="micro-batches per step")
    lr: float | None = option(
        None,
        help="LoRA learning rate (default: 1e-3; ktm train's recipe: 3e-4 for a task run whose "
        "merger starts pre-trained, 6e-4 then if its question stays raw)",
    )
    merger_lr: float | None = option(None, help="merger learning rate (default: --lr)")
    weight_decay: float = option(0.0, help="AdamW weight decay")
    warmup_steps: int = option(10, help="linear learning-rate warm-up from 0, in steps")
    schedule: str = option(
        "cosine", choices=SCHEDULES, help="learning-rate decay after the warm-up"
    )
    max_grad_norm: float = option(1.0, help="gradient clipping (0: none)")
    eval_every: int = option(0, help="evaluate every N steps (0: only at the end)")
    save_every: int = option(50, help="checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = option(2, help="how many recent checkpoints to keep")
    seed: int = option(0, help="seed of data order, dropout and initialisation")
    reconstruction_weight: float = option(
        0.0,
        help="weight of an auxiliary loss that regenerates each prompt from its merged prefix "
        "(0: off)",
    )
    reconstruction_max_tokens: int | None = option(
        None, help="reconstruct at most this many prompt tokens"
    )
    distill_weight: float = option(1.0, help="weight of distillation from --teacher")
    distill_blocks: bool = option(
        False, help="distil the teacher's states at every compressed position, not only the answer"
    )
    raw_anneal_steps: int | None = option(
        None,
        help="a raw-to-merged curriculum at K > 1: step 0 keeps every prompt token raw (as "
        "K = 1 reads it), and the share kept raw (the highest-ranked tokens, --token-scorer) "
        "falls linearly to the model's own layout by this step (0: off; default: half the "
        "steps, at most 200, when a task run starts from a pre-trained merger and merges its "
        "question too, else off)",
    )
    progress: bool = option(True, cli=False, help="show a progress bar")

    def raw_share(self, step: int, final: float) -> float | None:
        """The budget (positions per prompt token) of ``step`` in the raw-to-merged
        curriculum: 1 (every token raw) at step 0, falling linearly towards ``final`` (the
        model's own: its budget, or 1/K); None once the curriculum is over, or when ``final``
        is 1 (K = 1: every token is raw already)."""
        steps = self.raw_anneal_steps or 0  # None (a recipe's default left undecided): off
        if step >= steps or final >= 1:
            return None
        return 1.0 - (1.0 - final) * step / steps

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise KTMError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("warmup_steps", "eval_every", "save_every", "seed", "raw_anneal_steps"):
            value = getattr(self, name)
            if value is None and name == "raw_anneal_steps":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise KTMError(f"{name} must be an integer >= 0, got {value!r}")
        if self.seed >= MAX_SEED:
            raise KTMError(f"seed must be below 2**32, got {self.seed}")
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
