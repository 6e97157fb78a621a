"""What a task is, and the registry that names them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KTMError
from ..example import Example
from .records import BadRow, read_rows, text_field


@dataclass
class LabeledExample:
    """A classification example: the text parts and its gold label."""

    prompt: str
    label: str
    suffix: str | None = None
    source: str | None = None  # "file:line" of the row it came from, for error messages
    input_text: str | None = None  # what an edit starts from (the copy-the-input baseline)
    prompt_ids: tuple[int, ...] | None = None  # token ids a prompt transform chose

    @property
    def model_prompt(self) -> str | tuple[int, ...]:
        """What the model reads as the prompt: its token ids if given, else the text."""
        return self.prompt_ids if self.prompt_ids is not None else self.prompt

    def to_example(self) -> Example:
        return Example(self.prompt, self.label, self.suffix, self.prompt_ids)


@dataclass
class Splits:
    """A task's train and test examples, and what loading them did (skipped, truncated …)."""

    train: list[LabeledExample]
    test: list[LabeledExample]
    info: dict = field(default_factory=dict)


@dataclass
class Task:
    """Data + prompt format + metric, registered by name; one training engine serves all.

    ``kind`` is ``"classification"`` (the answer is one of ``labels``; scored on the label)
    or ``"generation"`` (free text; scored by perplexity and similarity to the reference).
    """

    name: str
    labels: tuple[str, ...] = ()
    positive: str | None = None
    kind: str = "classification"

    def read_split(self, path: str | Path) -> list[LabeledExample]:
        """Read a JSONL split with ``prompt``, the answer (``label`` or ``answer``) and an
        optional ``suffix``."""
        return read_labeled_jsonl(path, self.labels if self.kind == "classification" else None)

    def with_data(self, data) -> "Task":
        """The task as a data config shapes it (a custom task takes its template from it)."""
        return self

    def load(self, data, tokenizer) -> Splits:
        """The train and test splits ``data`` (a :class:`ktm.recipes.data.DataConfig`) names:
        ``<data_dir>/train.jsonl`` and ``test.jsonl`` in the ``prompt``/``label`` format."""
        if data.data_dir is None:
            raise KTMError(
                f"task {self.name!r} needs --data FOLDER with train.jsonl and test.jsonl"
            )
        folder = Path(data.data_dir)
        if not folder.is_dir():
            raise KTMError(f"data folder not found: {folder}")
        return Splits(
            self.read_split(folder / "train.jsonl"), self.read_split(folder / "test.jsonl")
        )


@dataclass
class ClassificationTask(Task):
    kind: str = "classification"


@dataclass
class GenerationTask(Task):
    kind: str = "generation"


def read_labeled_jsonl(path: str | Path, labels: tuple[str, ...] | None) -> list[LabeledExample]:
    """``prompt`` + ``label`` (or ``answer``) + optional ``suffix`` per line; ``labels`` (if
    given) is the allowed label set."""

    def convert(row: dict) -> LabeledExample:
        prompt = text_field(row, "prompt")
        key = "answer" if labels is None and "answer" in row else "label"
        label = text_field(row, key, allow_empty=labels is None)
        if labels is not None and label not in labels:
            raise BadRow(f"label {label!r} is not one of {list(labels)}")
        suffix = row.get("suffix")
        if suffix is not None and not isinstance(suffix, str):
            raise BadRow("'suffix' must be a string")
        return LabeledExample(prompt, label, suffix)

    return read_rows(path, convert, "jsonl")


_REGISTRY: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Callable[[], Task]) -> None:
    _REGISTRY[name] = factory


def get_task(name: str) -> Task:
    if name not in _REGISTRY:
        raise KTMError(f"unknown task {name!r}; known: {', '.join(task_names())}")
    return _REGISTRY[name]()


def task_names() -> list[str]:
    return sorted(_REGISTRY)
