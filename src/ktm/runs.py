"""A training run end to end: data, model, training (plain or curriculum), final evaluation.

Everything a run used is written to ``<out>/config.json`` before it starts, and its final
metrics to ``<out>/metrics.json``; ``resume`` continues an interrupted run in place.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import KTMConfig
from .curriculum import Stage, run_curriculum
from .distributed import process_state
from .errors import KTMError
from .evaluation import evaluate_task
from .io_utils import read_json, write_json_atomic
from .model import KTMModel
from .run_files import check_dtype, check_run_dir, run_dict, run_from_dict, write_run_config
from .tasks import get_task
from .tasks.base import LabeledExample
from .tasks.context_fit import ContextLimit, fit_context
from .tasks.records import BadRows
from .tasks.tree import generate_split, get_stage
from .training import TrainConfig, train
from .training.config import DEFAULT_LR

DEFAULT_METRIC = "balanced_accuracy"


@dataclass
class DataConfig:
    """Where a run's examples come from.

    Attributes:
        task: registered task name (``tree``, ``amazon``, ``commitpack``, ``custom``).
        data_dir: folder with ``train`` / ``test`` ``.jsonl`` (or ``.csv``); for tree, if unset,
            data is generated for each of ``stages``; for amazon and commitpack, if unset,
            ``$KTM_DATA_DIR/amazon_reviews`` or ``$KTM_DATA_DIR/commitpack``.
        train_file, test_file: explicit split files (override ``data_dir``).
        data_format: ``jsonl`` or ``csv`` (default: from the file name).
        hub: read the task's Hugging Face dataset instead of local files.
        category: hub config part (Amazon category, CommitPackFT language).
        template, suffix_template: prompt templates over record fields (``{text}``); the
            suffix stays uncompressed. Required for ``custom``; replace a task's default.
        answer_field: the field holding the answer (``custom``).
        labels: the label set of a ``custom`` classification task (none: generation).
        skip_bad_rows: skip and count malformed rows instead of stopping at the first.
        max_train, max_test: examples drawn (seeded) from each split (all: None).
        max_prompt_tokens: longest prompt (+ suffix), in tokens before compression.
        max_answer_tokens: rows with longer answers are dropped (answers are never cut).
        truncation: a prompt over the limit loses the ``head``-kept field's end (``head``
            keeps the start), keeps its end (``tail``), or is dropped (``skip``).
        truncate_field: the field cut to fit (default: the task's long field).
        gen_limit: test examples scored by generation (exact match, edit similarity).
        stages: tree curriculum stages, in order (generated data only).
        train_trees, test_trees: trees per stage for the train and test splits.
        balance: class-balanced training data (tree: equal ``true`` and ``false``; record
            classification tasks: every label equally frequent, the commoner ones subsampled).
        balance_test: class-balanced test data too.
        split_question: compress only the tree; keep the question as an uncompressed suffix.
        data_seed: seed of the generator and of the split sampling (test: ``data_seed + 1``).
        eval_limit: examples of the test split used by the periodic evaluations (all: None).
        pass_threshold: curriculum: metric value that passes a stage (paper: 0.85) …
        final_threshold: … and the last stage (paper: 0.95).
    """

    task: str = "tree"
    data_dir: str | None = None
    train_file: str | None = None
    test_file: str | None = None
    data_format: str | None = None
    hub: bool = False
    category: str | None = None
    template: str | None = None
    suffix_template: str | None = None
    answer_field: str = "answer"
    labels: list[str] | None = None
    skip_bad_rows: bool = False
    max_train: int | None = None
    max_test: int | None = None
    max_prompt_tokens: int | None = None
    max_answer_tokens: int | None = None
    truncation: str = "head"
    truncate_field: str | None = None
    gen_limit: int = 32
    stages: list[str] = field(default_factory=lambda: ["small"])
    train_trees: int = 2000
    test_trees: int = 100
    balance: bool = True
    balance_test: bool = False
    split_question: bool = False
    data_seed: int = 0
    eval_limit: int | None = None
    pass_threshold: float = 0.85
    final_threshold: float = 0.95

    def __post_init__(self) -> None:
        from .tasks.record_task import TRUNCATION
        from .tasks.records import FORMATS

        get_task(self.task)
        for name in ("pass_threshold", "final_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise KTMError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.task == "tree" and self.data_dir is None:
            if not self.stages:
                raise KTMError("give at least one tree stage")
            for s in self.stages:
                get_stage(s)
        if self.train_trees < 1 or self.test_trees < 1:
            raise KTMError("train_trees and test_trees must be >= 1")
        for name in (
            "eval_limit",
            "max_train",
            "max_test",
            "max_prompt_tokens",
            "max_answer_tokens",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise KTMError(f"{name} must be >= 1, got {value}")
        if self.gen_limit < 0:
            raise KTMError(f"gen_limit must be >= 0, got {self.gen_limit}")
        if self.truncation not in TRUNCATION:
            raise KTMError(
                f"truncation must be one of {', '.join(TRUNCATION)}, got {self.truncation!r}"
            )
        if self.data_format is not None and self.data_format not in FORMATS:
            raise KTMError(f"data_format must be one of {', '.join(FORMATS)}")
        if self.labels is not None and len(set(self.labels)) < 2:
            raise KTMError(f"labels must name at least two distinct labels, got {self.labels}")


FINETUNE_LR = 3e-4  # the task phase's learning rate after pre-training (resolved())


@dataclass
class RunConfig:
    """A whole run: model, data and recipe. Written to ``config.json`` beside the outputs."""

    model: str
    ktm: KTMConfig
    train: TrainConfig
    data: DataConfig
    curriculum: bool = False
    round_steps: int = 50
    max_rounds: int = 10
    metric: str = DEFAULT_METRIC
    eval_batch_size: int = 32
    dtype: str = "float32"
    init_from: str | None = None
    init_lora_from: str | None = None
    teacher: str | None = None
    pretrain_steps: int | None = None
    pretrain_chunk_tokens: int = 32
    pretrain_lr: float = DEFAULT_LR
    pretrain_text: list[str] = dataclasses.field(default_factory=list)
    pretrain_k_warmup_steps: int | None = None

    def __post_init__(self) -> None:
        check_dtype(self.dtype)
        if not (self.pretrain_lr > 0 and math.isfinite(self.pretrain_lr)):
            raise KTMError(f"pretrain_lr must be a positive number, got {self.pretrain_lr!r}")
        steps = self.pretrain_steps
        bad = isinstance(steps, bool) or not isinstance(steps, int) or steps < 0
        if steps is not None and bad:
            raise KTMError(f"pretrain_steps must be an integer >= 0, got {steps!r}")
        if steps and not self.pretraining_applies:
            raise KTMError(
                "pretrain_steps needs K > 1 with the MLP merger and no init_from, init_lora_from "
                "or reduction (nothing else has a merger to pre-train); leave it unset or 0"
            )
        if self.init_lora_from and self.ktm.lora_r == 0:
            raise KTMError("init_lora_from needs a LoRA (lora_r > 0); leave it unset")
        if self.pretrain_chunk_tokens < 2:
            raise KTMError(f"pretrain_chunk_tokens must be >= 2, got {self.pretrain_chunk_tokens}")
        if self.pretrain_text and not self.resolved_pretrain_steps:
            raise KTMError(
                "pretrain_text is read by the pre-training phase, which this run does not have "
                "(it needs K > 1 with the MLP merger, no init_from or init_lora_from, and "
                "pretrain_steps not 0)"
            )

    @property
    def _has_mlp_merger(self) -> bool:
        k = self.ktm
        return k.k > 1 and k.merger == "mlp" and k.reduction is None

    @property
    def pretraining_applies(self) -> bool:
        """Whether the run has a fresh MLP merger and LoRA that pre-training would help."""
        return self._has_mlp_merger and not (self.init_from or self.init_lora_from)

    @property
    def resolved_pretrain_steps(self) -> int:
        """Reconstruction pre-training steps before the task: ``pretrain_steps``, or when it is
        unset (the default recipe) as many as the task's steps wherever pre-training applies."""
        if self.pretrain_steps is None:
            return self.train.steps if self.pretraining_applies else 0
        return self.pretrain_steps

    @property
    def merger_starts_pretrained(self) -> bool:
        """Whether the task phase starts from a reconstruction-trained MLP merger: the
        built-in pre-training phase runs, or ``init_from`` gives one."""
        return self._has_mlp_merger and bool(self.init_from or self.resolved_pretrain_steps)

    def resolved(self) -> "RunConfig":
        """This config with the recipe's defaults decided, as the run records it.

        An unset ``train.lr`` becomes :data:`FINETUNE_LR` (3e-4) when the merger starts
        pre-trained — the task then fine-tunes a model that already reads merged blocks, and
        at 1e-3 its first task steps undo that (runs took off and collapsed, or never took
        off: docs/learnability.md §2.10) — and :data:`DEFAULT_LR` (1e-3) otherwise.
        """
        t = self.train
        lr = (
            t.lr
            if t.lr is not None
            else (FINETUNE_LR if self.merger_starts_pretrained else DEFAULT_LR)
        )
        return dataclasses.replace(self, train=dataclasses.replace(t, lr=lr))

    def to_dict(self) -> dict:
        return run_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return run_from_dict(cls, d, data=DataConfig)


def load_teacher(path: str, student: KTMModel, dtype) -> KTMModel:
    """A frozen teacher for distillation; it must share the student's base model shape."""
    from .model import _base_info, _check_base, checkpoint_folder

    folder = checkpoint_folder(path)
    teacher = KTMModel.from_pretrained(folder, dtype=dtype)
    _check_base(folder, _base_info(teacher.causal_lm), _base_info(student.causal_lm), "the student")
    return teacher


def load_stages(
    data: DataConfig, tokenizer=None, limit: ContextLimit | None = None
) -> tuple[list[Stage], dict]:
    """The stages a run trains on (one unless it is a tree curriculum), and what loading the
    data did (rows skipped or truncated, limits) — reported beside the results.

    ``tokenizer`` is needed by record tasks (their length limits count tokens). With
    ``limit`` (the model's positions and the run's K) an example that does not fit is an
    error naming its file and line, or skipped and counted under ``data.skip_bad_rows``.
    """
    stages, info = _read_stages(data, tokenizer)
    if limit is None:
        return stages, info
    fitted, skipped = [], {}
    for stage in stages:
        bad = {"train": BadRows(), "test": BadRows()}
        skip = data.skip_bad_rows
        train = fit_context(stage.train, tokenizer, limit, skip, bad["train"], "train")
        test = fit_context(stage.test, tokenizer, limit, skip, bad["test"], "test")
        fitted.append(dataclasses.replace(stage, train=train, test=test))
        skipped[stage.name] = {split: b.to_dict() for split, b in bad.items()}
    info = {**info, "context": {"positions": limit.positions, "k": limit.k, "over": skipped}}
    return fitted, info


def context_limit(model: KTMModel) -> ContextLimit | None:
    """The positions ``model`` holds and how many prompt tokens share one (its K, or the
    budget of a token-reduction baseline); None when its config states no limit."""
    if not model.max_positions:
        return None
    how = model.config
    if how.positions == "spread":  # each prompt token keeps its own position
        return ContextLimit(model.max_positions, 1)
    return ContextLimit(model.max_positions, how.reduction_k if how.reduction else how.k)


def _read_stages(data: DataConfig, tokenizer) -> tuple[list[Stage], dict]:
    task = get_task(data.task).with_data(data)
    if data.task != "tree" or data.data_dir is not None:
        splits = task.load(data, tokenizer)
        name = Path(data.data_dir).name if data.data_dir else data.task
        return [Stage(name, splits.train, splits.test, data.final_threshold)], splits.info
    stages = []
    for i, name in enumerate(data.stages):
        spec = get_stage(name)
        last = i == len(data.stages) - 1
        stages.append(
            Stage(
                name,
                generate_split(
                    spec, data.train_trees, data.data_seed, data.balance, data.split_question
                ),
                generate_split(
                    spec,
                    data.test_trees,
                    data.data_seed + 1,
                    data.balance_test,
                    data.split_question,
                ),
                data.final_threshold if last else data.pass_threshold,
            )
        )
    return stages, {}


def _pretrain_phase_state(cfg: RunConfig, out: Path, resume: bool) -> str | None:
    """Where the built-in pre-training phase stands: ``None`` (the run has none, or is past
    it), ``"done"`` (its merger is in ``<out>/pretrain/model``) or ``"to run"``."""
    if cfg.resolved_pretrain_steps == 0:
        return None
    folder = out / "pretrain"
    if resume and not folder.exists() and (out / "checkpoints").exists():
        return None  # a run past this phase; or written before ktm had it, so it never will
    return "done" if (folder / "metrics.json").is_file() else "to run"


def _pretrain_phase(cfg: RunConfig, out: Path, state: str | None, progress: bool) -> dict | None:
    """The default recipe's first phase: reconstruction pre-training of merger + LoRA on the
    task's training prompts, as a run of its own in ``<out>/pretrain`` (resumable); the task
    model then starts from ``<out>/pretrain/model``. ``state`` is
    :func:`_pretrain_phase_state`'s. Returns what it did (``None`` when it does not apply)."""
    if state is None:
        return None
    steps, folder = cfg.resolved_pretrain_steps, out / "pretrain"
    if state == "to run":
        from .pretrain import NotEnoughText, PretrainConfig, run_pretraining

        train_cfg = dataclasses.replace(
            cfg.train,
            steps=steps,
            lr=cfg.pretrain_lr,
            merger_lr=None,
            reconstruction_weight=0.0,
            reconstruction_max_tokens=None,
            distill_blocks=False,
        )
        pre = PretrainConfig(
            model=cfg.model,
            ktm=cfg.ktm,
            train=train_cfg,
            texts=list(cfg.pretrain_text),
            data=cfg.data,
            chunk_tokens=cfg.pretrain_chunk_tokens,
            dtype=cfg.dtype,
            k_warmup_steps=cfg.pretrain_k_warmup_steps,
        )
        if process_state().is_main_process:
            print(
                f"ktm: pre-training merger + LoRA on the task's prompts for {steps} steps "
                f"first ({folder}; --pretrain-steps 0 skips)",
                file=sys.stderr,
            )
        try:
            again = (folder / "config.json").is_file()
            run_pretraining(pre, folder, resume=again, progress=progress)
        except NotEnoughText as e:
            if cfg.pretrain_steps is not None:  # asked for explicitly: an error
                raise
            print(f"ktm: note: no pre-training ({e}); the merger starts fresh", file=sys.stderr)
            return {"skipped": str(e)}
    done = read_json(folder / "metrics.json", "pre-training metrics")
    last = done["evals"][-1] if done.get("evals") else {}
    return {"steps": done["steps"], "chunks": done["chunks"],
            "train_seconds": done["train_seconds"], **last}  # fmt: skip


def _build_models(cfg: RunConfig) -> tuple[KTMModel, KTMModel | None]:
    """The run's model (seeded LoRA and merger initialisation, then ``init_from``, then the
    LoRA of ``init_lora_from``) and its distillation teacher, if any."""
    import torch

    dtype = getattr(torch, cfg.dtype)
    torch.manual_seed(cfg.train.seed)
    model = KTMModel.from_base(cfg.model, cfg.ktm, dtype=dtype)
    if cfg.init_from:
        model.init_from(cfg.init_from)
    if cfg.init_lora_from:  # e.g. a task run at a smaller K: its LoRA, over init_from's
        model.init_from(cfg.init_lora_from, lora_only=True)
    return model, load_teacher(cfg.teacher, model, dtype) if cfg.teacher else None


def _limited(rows: list[LabeledExample], limit: int | None) -> list[LabeledExample]:
    return rows if limit is None else rows[:limit]


def run_training(
    cfg: RunConfig, output_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict:
    """Train as ``cfg`` says, evaluate on the (last reached) test split, write metrics."""
    out = Path(output_dir)
    cfg = cfg.resolved()
    task = get_task(cfg.data.task).with_data(cfg.data)
    if cfg.curriculum and task.kind != "classification":
        raise KTMError("curriculum training needs a classification task")
    check_run_dir(out, cfg, resume)
    # Build the model and read the data before writing anything: bad input leaves no folder.
    model, teacher = _build_models(cfg)
    stages, data_info = load_stages(cfg.data, model.tokenizer, context_limit(model))
    if len(stages) > 1 and not cfg.curriculum:
        raise KTMError("several stages need curriculum training (--curriculum)")
    if cfg.pretrain_text:
        from .pretrain import read_texts

        read_texts(cfg.pretrain_text)  # a missing or unreadable file fails here, not mid-run
    state = write_run_config(out, cfg.to_dict())
    phase = _pretrain_phase_state(cfg, out, resume)
    if phase == "to run":  # the phase builds its own model: hold one base model at a time
        del model, teacher
        gc.collect()
    pretrain_info = _pretrain_phase(cfg, out, phase, progress)
    if phase == "to run":
        model, teacher = _build_models(cfg)  # the same initialisation as the first build
    if pretrain_info and "skipped" not in pretrain_info:
        model.init_from(out / "pretrain" / "model")
    cfg.train.progress = progress
    t0 = time.perf_counter()
    if cfg.curriculum:
        summaries = run_curriculum(
            model,
            task,
            stages,
            cfg.train,
            out,
            cfg.round_steps,
            cfg.max_rounds,
            cfg.metric,
            cfg.eval_batch_size,
            resume,
            teacher=teacher,
        )
        reached = stages[len(summaries) - 1]
        if state.is_main_process:
            model.save_pretrained(out / "model")
        train_info = {"stages": summaries}
        step_seconds = sum(st["seconds"] for st in summaries)
    else:
        reached = stages[0]
        eval_rows = _limited(list(reached.test), cfg.data.eval_limit)

        def evaluate(m: KTMModel) -> dict:
            return evaluate_task(
                m,
                task,
                eval_rows,
                cfg.eval_batch_size,
                cfg.data.gen_limit,
                cfg.data.max_answer_tokens,
            )

        result = train(
            model,
            [e.to_example() for e in reached.train],
            cfg.train,
            out,
            evaluate=evaluate,
            resume=resume,
            teacher=teacher,
        )
        step_seconds = sum(r["seconds"] for r in result.history)
        train_info = {
            "steps": result.steps_done,
            "processes": result.processes,
            "evals": result.evals,
        }
    wall_seconds = time.perf_counter() - t0
    metrics = evaluate_task(
        model,
        task,
        list(reached.test),
        cfg.eval_batch_size,
        cfg.data.gen_limit,
        cfg.data.max_answer_tokens,
    )
    result = {
        "model": cfg.model,
        "k": cfg.ktm.k,
        "merger": cfg.ktm.merger,
        "stage": reached.name,
        "train_examples": len(reached.train),
        "test_examples": len(reached.test),
        "train_seconds": round(step_seconds, 1),  # optimizer steps only, over all resumes
        "wall_seconds": round(wall_seconds, 1),  # this invocation, evaluations included
        "test": metrics,
        **({"pretrain": pretrain_info} if pretrain_info else {}),
        **({"data": data_info} if data_info else {}),
        **train_info,
    }
    if state.is_main_process:
        write_json_atomic(out / "metrics.json", result)
    state.wait_for_everyone()
    return result
