"""``RunConfig``: everything a ``ktm train`` run is — model, data and recipe — and the
recipe's defaults, decided once (:meth:`RunConfig.resolved`) and recorded in ``config.json``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..config import REDUCTIONS, KTMConfig
from ..errors import KTMError
from ..fields import option
from ..training import TrainConfig
from ..training.config import DEFAULT_LR
from .data import DataConfig
from .general_merger import NONE, find_general_merger, is_general_merger
from .options import dtype_option, ktm_part, model_option, train_part
from .run_folder import check_dtype, run_dict, run_from_dict

DEFAULT_METRIC = "balanced_accuracy"

FINETUNE_LR = 3e-4  # the task phase's learning rate after pre-training (resolved())
QUESTION_RAW_LR = 6e-4  # the same when the question stays raw (resolved())
PRETRAIN_FROM_SAVED_LR = 5e-4  # the pre-training phase's rate when it starts from a saved merger
RAW_ANNEAL_MAX = 200  # the raw-to-merged curriculum's default length after a pre-trained start


@dataclass
class RunConfig:
    """A whole run: model, data and recipe. Written to ``config.json`` beside the outputs."""

    model: str = model_option()
    ktm: KTMConfig = ktm_part()
    train: TrainConfig = train_part()
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    curriculum: bool = option(
        False, help="train the --stages in order, moving on when a stage passes its threshold"
    )
    round_steps: int = option(50, help="curriculum: steps between stage checks")
    max_rounds: int = option(10, help="curriculum: rounds before giving a stage up")
    metric: str = option(
        DEFAULT_METRIC,
        choices=("balanced_accuracy", "accuracy"),
        help="curriculum: the metric a stage must pass",
    )
    eval_batch_size: int = option(32, help="examples per evaluation batch")
    dtype: str = dtype_option()
    init_from: str | None = option(
        None,
        help="start from the merger + LoRA of a saved model (e.g. from `ktm pretrain`); none: "
        "not from the general merger either (default: the general merger for this base model "
        "and K, if there is one)",
    )
    init_lora_from: str | None = option(
        None,
        help="then take the LoRA alone from this saved model or checkpoint, whatever its K "
        "(a curriculum over K)",
    )
    teacher: str | None = option(
        None, help="a trained model (e.g. the K = 1 run) to distil from (see --distill-weight)"
    )
    pretrain_steps: int | None = option(
        None,
        help="reconstruction pre-training steps on the task's prompts before the task, at "
        "K > 1 with the MLP merger (default: as many as --steps from a fresh merger, a quarter "
        "of them from the general merger, none after --init-from; 0: none)",
    )
    pretrain_chunk_tokens: int = option(32, help="tokens per pre-training chunk")
    pretrain_lr: float | None = option(
        None,
        help="learning rate of the pre-training phase (default: 1e-3 from a fresh merger, 5e-4 "
        "from a saved one)",
    )
    pretrain_text: list[str] = option(
        default_factory=list,
        repeat=True,
        help="unlabeled text of the task's kind for the pre-training phase, after the task's "
        "prompts: .txt (paragraphs) or .jsonl with a 'text' field (repeatable)",
    )
    reduction: str | None = option(
        None,
        choices=REDUCTIONS,
        help="a token-space baseline instead of merging (with --k 1): the model reads the "
        "first, last or most informative ceil(T/--reduction-k) prompt tokens (qprune: those "
        "the raw question after the prompt names first)",
    )
    reduction_k: int = option(1, help="the K whose input budget the reduction matches")
    pretrain_k_warmup_steps: int | None = option(
        None,
        help="pre-training steps at each smaller K (2, 4, ... below --k) first (default: a "
        "tenth of the phase, at most 40; 0: none)",
    )

    def __post_init__(self) -> None:
        check_dtype(self.dtype)
        if self.reduction is not None:
            if self.reduction not in REDUCTIONS:
                raise KTMError(
                    f"reduction must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}"
                )
            if self.ktm.k != 1:
                raise KTMError(
                    f"a token reduction reads tokens as they are: k must be 1, not {self.ktm.k}"
                )
        by_question = self.ktm.token_scorer == "query" or self.reduction == "qprune"
        if by_question and not self.data.question_raw:
            what = "reduction qprune" if self.reduction == "qprune" else "token_scorer query"
            raise KTMError(
                f"{what} ranks a prompt's tokens by the question kept raw after it, and this "
                "run merges the whole prompt: keep the question raw (--split-question, "
                "--suffix-template, --split-field) or choose another ranking"
            )
        r = self.reduction_k
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise KTMError(f"reduction_k must be an integer >= 1, got {r!r}")
        if self.pretrain_lr is not None and not (
            self.pretrain_lr > 0 and math.isfinite(self.pretrain_lr)
        ):
            raise KTMError(f"pretrain_lr must be a positive number, got {self.pretrain_lr!r}")
        steps = self.pretrain_steps
        bad = isinstance(steps, bool) or not isinstance(steps, int) or steps < 0
        if steps is not None and bad:
            raise KTMError(f"pretrain_steps must be an integer >= 0, got {steps!r}")
        if steps and not self.pretraining_applies:
            raise KTMError(
                "pretrain_steps needs K > 1 with the MLP merger and no init_lora_from or "
                "reduction (nothing else has a merger to pre-train); leave it unset or 0"
            )
        if self.init_lora_from and self.ktm.lora_r == 0:
            raise KTMError("init_lora_from needs a LoRA (lora_r > 0); leave it unset")
        if self.pretrain_chunk_tokens < 2:
            raise KTMError(f"pretrain_chunk_tokens must be >= 2, got {self.pretrain_chunk_tokens}")
        if self.pretrain_text and not self.resolved_pretrain_steps:
            raise KTMError(
                "pretrain_text is read by the pre-training phase, which this run does not have "
                "(it needs K > 1 with the MLP merger, no init_lora_from, and pretrain_steps "
                "not 0; after init_from, give pretrain_steps)"
            )

    @property
    def _has_mlp_merger(self) -> bool:
        k = self.ktm
        return k.k > 1 and k.merger == "mlp" and self.reduction is None

    @property
    def start_from(self) -> str | None:
        """The saved model the run starts from (``init_from``, ``none`` read as none)."""
        return None if self.init_from in (None, NONE) else self.init_from

    @property
    def pretraining_applies(self) -> bool:
        """Whether the run has an MLP merger and LoRA (fresh, or from a saved merger) that
        pre-training on the task's prompts would help."""
        return self._has_mlp_merger and not self.init_lora_from

    @property
    def general_merger_applies(self) -> bool:
        """Whether the default recipe would start from a general merger: an MLP merger, no
        ``init_from`` (not even ``none``) and no ``init_lora_from``."""
        return self.pretraining_applies and self.init_from is None

    @property
    def resolved_pretrain_steps(self) -> int:
        """Reconstruction pre-training steps before the task: ``pretrain_steps``, or when it is
        unset (the default recipe) as many as the task's steps from a fresh merger, a quarter
        of them (at least 1) from a general merger — it reads merged text already, and only
        meets the task's kind of prompt — and none from another saved one (``init_from``)."""
        if self.pretrain_steps is not None:
            return self.pretrain_steps
        if not self.pretraining_applies:
            return 0
        if not self.start_from:
            return self.train.steps
        return max(1, self.train.steps // 4) if is_general_merger(self.start_from) else 0

    @property
    def merger_starts_pretrained(self) -> bool:
        """Whether the task phase starts from a reconstruction-trained MLP merger: the
        built-in pre-training phase runs, or ``init_from`` gives one."""
        return self._has_mlp_merger and bool(self.start_from or self.resolved_pretrain_steps)

    def resolved(self) -> "RunConfig":
        """This config with the recipe's defaults decided, as the run records it.

        With no ``init_from`` where the default recipe applies, the run starts from the general
        merger for its base model and K (:mod:`.general_merger`; a default width becomes the
        merger's), if there is one, after a pre-training phase on the task's prompts of a
        quarter of the steps (an unset ``pretrain_steps``) at ``pretrain_lr`` 5e-4 (1e-3 from
        a fresh merger). An unset ``train.lr`` becomes :data:`FINETUNE_LR` (3e-4) when the
        merger starts pre-trained — the task then fine-tunes a model that already reads merged
        blocks, and at 1e-3 its first task steps undo that (runs took off and collapsed, or
        never took off) — or :data:`QUESTION_RAW_LR` (6e-4) then if the question stays raw (it
        learns sooner; 1e-3 is worse again), and :data:`DEFAULT_LR` (1e-3) otherwise. An unset
        ``train.raw_anneal_steps`` becomes half the steps, at most :data:`RAW_ANNEAL_MAX`, when
        the run starts from a saved merger and merges the question too (the task is learnt on
        raw tokens first, then merged a token at a time: from a pre-trained merger the merged
        task otherwise takes off late or never), and 0 otherwise (with the question raw the
        task takes off within ~100 steps without it; its last merges only set it back).
        """
        cfg = self
        if self.general_merger_applies:
            found = find_general_merger(self.model, self.ktm)
            if found is not None:
                cfg = dataclasses.replace(self, init_from=str(found[0]), ktm=found[1])
        t = cfg.train
        lr = (
            t.lr
            if t.lr is not None
            else (
                (QUESTION_RAW_LR if cfg.data.question_raw else FINETUNE_LR)
                if cfg.merger_starts_pretrained
                else DEFAULT_LR
            )
        )
        anneal = t.raw_anneal_steps
        if anneal is None:
            starts_saved = cfg.start_from and cfg.ktm.k > 1 and cfg.reduction is None
            merged_question = not cfg.data.question_raw
            anneal = min(RAW_ANNEAL_MAX, t.steps // 2) if starts_saved and merged_question else 0
        pretrain_lr = cfg.pretrain_lr or (PRETRAIN_FROM_SAVED_LR if cfg.start_from else DEFAULT_LR)
        return dataclasses.replace(
            cfg,
            train=dataclasses.replace(t, lr=lr, raw_anneal_steps=anneal),
            pretrain_lr=pretrain_lr,
        )

    def to_dict(self) -> dict:
        return run_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return run_from_dict(cls, d, data=DataConfig)
