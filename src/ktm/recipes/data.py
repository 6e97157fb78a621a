"""Where a run's examples come from: :class:`DataConfig`, and the stages (train and test
splits) it describes, read and checked against the model's context."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import KTMError
from ..fields import applies_to, default_of, option
from ..model import KTMModel
from ..tasks import get_task
from ..tasks.base import LabeledExample
from ..tasks.context_fit import ContextLimit, fit_context
from ..tasks.metrics import GEN_LIMIT_CAP
from ..tasks.records import BadRows
from ..tasks.tree import generate_split, get_stage


@dataclass
class Stage:
    """One set of train and test examples, and the metric value that passes it (a curriculum
    moves on to the next stage then)."""

    name: str
    train: Sequence[LabeledExample]
    test: Sequence[LabeledExample]
    threshold: float


TREE = ("tree",)  # fields of the generated tree data only
HUB = ("amazon", "commitpack")  # fields of the tasks with a Hugging Face dataset
CUSTOM = ("custom",)
RECORDS = ("amazon", "commitpack", "custom")  # tasks whose prompts come from a template


@dataclass
class DataConfig:
    """Where a run's examples come from, and the limits and sampling applied to them.

    Each field's help says what it does; a field tagged with ``tasks`` means nothing for the
    other tasks and is left out of their saved configs.
    """

    task: str = option("tree", help="tree, amazon, commitpack or custom (your own file)")
    data_dir: str | None = option(
        None,
        flag="data",
        help="folder with train/test .jsonl or .csv (tree: generated when unset; amazon, "
        "commitpack: default $KTM_DATA_DIR/amazon_reviews, $KTM_DATA_DIR/commitpack)",
    )
    train_file: str | None = option(None, help="training split file (overrides --data)")
    test_file: str | None = option(None, help="test split file (overrides --data)")
    data_format: str | None = option(
        None, choices=("jsonl", "csv"), help="file format (default: from the file name)"
    )
    hub: bool = option(False, tasks=HUB, help="read the task's Hugging Face dataset")
    category: str | None = option(
        None, tasks=HUB, help="hub config: Amazon category / CommitPackFT language"
    )
    template: str | None = option(
        None,
        help="prompt template over record fields, e.g. 'Review: {text}, Label:' (required "
        "for custom; replaces a task's own; \\n in it is a newline)",
    )
    suffix_template: str | None = option(
        None, help="a part kept uncompressed after the merged prompt, e.g. 'Question: {q}'"
    )
    split_field: str | None = option(
        None,
        tasks=RECORDS,
        help="keep the tail of this field raw: cut it at the last --split-marker; what follows "
        "stays uncompressed (e.g. a question at the end of a document)",
    )
    split_marker: str | None = option(
        None,
        tasks=RECORDS,
        help="the text --split-field is cut at (it stays raw, with what follows)",
    )
    answer_field: str = option("answer", tasks=CUSTOM, help="the field holding the answer")
    labels: list[str] | None = option(
        None,
        tasks=CUSTOM,
        help="comma-separated label set: a classification task (none: generation)",
    )
    skip_bad_rows: bool = option(False, help="skip and count malformed rows instead of stopping")
    max_train: int | None = option(None, help="training examples drawn (seeded; all: unset)")
    max_test: int | None = option(None, help="test examples drawn (seeded; all: unset)")
    max_prompt_tokens: int | None = option(
        None, help="longest prompt in tokens before compression (see --truncation)"
    )
    max_answer_tokens: int | None = option(
        None, help="drop rows whose answer is longer (answers are never cut)"
    )
    truncation: str = option(
        "head",
        choices=("head", "tail", "skip"),
        help="over-long prompt: keep the start of the long field, keep its end, or drop the row",
    )
    truncate_field: str | None = option(
        None, help="the field cut to fit (default: the task's long field)"
    )
    gen_limit: int | None = option(
        None,
        help=f"generation tasks: test examples scored by greedy generation (default: all, at "
        f"most {GEN_LIMIT_CAP})",
    )
    stages: list[str] = option(
        default_factory=lambda: ["small"],
        tasks=TREE,
        help="tree stages to generate when --data is not given, comma-separated, in order",
    )
    train_trees: int = option(2000, tasks=TREE, help="trees per stage for training")
    test_trees: int = option(100, tasks=TREE, help="trees per stage for testing")
    balance: bool = option(
        True,
        help="class-balanced training data (classification: every label equally frequent)",
    )
    balance_test: bool = option(False, tasks=TREE, help="class-balance the test split too")
    split_question: bool = option(
        False, tasks=TREE, help="compress only the tree; keep the question uncompressed"
    )
    data_seed: int = option(
        0, help="seed of the generator and of split sampling (test: data_seed + 1)"
    )
    eval_limit: int | None = option(
        None, help="test examples used by the periodic evaluations (all: unset)"
    )
    pass_threshold: float = option(
        0.85, tasks=TREE, help="curriculum: the metric value that passes a stage"
    )
    final_threshold: float = option(0.95, help="curriculum: ... and the last stage")

    @property
    def question_raw(self) -> bool:
        """Whether the prompts' tail stays raw after the merged part: the tree's question
        (``split_question``), a ``suffix_template``, or a ``split_field``."""
        return self.split_question or bool(self.suffix_template) or self.split_field is not None

    def to_dict(self) -> dict:
        """The fields that mean something for this config's task."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if applies_to(f, self.task)
        }

    def __post_init__(self) -> None:
        from ..tasks.record_task import TRUNCATION
        from ..tasks.records import FORMATS, decode_escapes

        get_task(self.task)
        for name in ("template", "suffix_template", "split_marker"):  # \n typed in a shell
            setattr(self, name, decode_escapes(getattr(self, name)))
        for f in dataclasses.fields(self):
            if not applies_to(f, self.task) and getattr(self, f.name) != default_of(f):
                raise KTMError(
                    f"{f.name} is for the {', '.join(f.metadata['tasks'])} task(s), not "
                    f"{self.task!r}; leave it out"
                )
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
        if self.gen_limit is not None and self.gen_limit < 0:
            raise KTMError(f"gen_limit must be >= 0, got {self.gen_limit}")
        if self.truncation not in TRUNCATION:
            raise KTMError(
                f"truncation must be one of {', '.join(TRUNCATION)}, got {self.truncation!r}"
            )
        if self.data_format is not None and self.data_format not in FORMATS:
            raise KTMError(f"data_format must be one of {', '.join(FORMATS)}")
        if self.labels is not None and len(set(self.labels)) < 2:
            raise KTMError(f"labels must name at least two distinct labels, got {self.labels}")


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


def context_limit(model: KTMModel, budget_k: int | None = None) -> ContextLimit | None:
    """The positions ``model`` holds and how many prompt tokens share one (its K, or
    ``budget_k`` for a token-budget baseline); None when its config states no limit."""
    if not model.max_positions:
        return None
    if model.config.positions == "spread":  # each prompt token keeps its own position
        return ContextLimit(model.max_positions, 1)
    return ContextLimit(model.max_positions, budget_k or model.k)


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


def first_n(rows: list[LabeledExample], limit: int | None) -> list[LabeledExample]:
    return rows if limit is None else rows[:limit]
