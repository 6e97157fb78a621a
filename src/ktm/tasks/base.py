"""What a task is, and the registry that names them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import KTMError
from ..training.data import Example


@dataclass
class LabeledExample:
    """A classification example: the text parts and its gold label."""

    prompt: str
    label: str
    suffix: str | None = None

    def to_example(self) -> Example:
        return Example(self.prompt, self.label, self.suffix)


@dataclass
class ClassificationTask:
    """A task whose answer is one of a fixed set of labels."""

    name: str
    labels: tuple[str, ...]
    positive: str | None = None

    def read_split(self, path: str | Path) -> list[LabeledExample]:
        """Read a JSONL split with ``prompt``, ``label`` and optional ``suffix`` fields."""
        return read_labeled_jsonl(path, self.labels)


def read_labeled_jsonl(path: str | Path, labels: tuple[str, ...]) -> list[LabeledExample]:
    path = Path(path)
    if not path.is_file():
        raise KTMError(f"data file not found: {path}")
    rows = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise KTMError(f"{path}:{lineno}: not a valid UTF-8 JSON line ({e})") from None
            if not isinstance(row, dict):
                raise KTMError(f"{path}:{lineno}: expected a JSON object")
            prompt, label, suffix = row.get("prompt"), row.get("label"), row.get("suffix")
            if not isinstance(prompt, str) or not prompt.strip():
                raise KTMError(f"{path}:{lineno}: 'prompt' must be a non-empty string")
            if label not in labels:
                raise KTMError(f"{path}:{lineno}: label {label!r} is not one of {list(labels)}")
            if suffix is not None and not isinstance(suffix, str):
                raise KTMError(f"{path}:{lineno}: 'suffix' must be a string")
            rows.append(LabeledExample(prompt, label, suffix))
    if not rows:
        raise KTMError(f"{path} holds no examples")
    return rows


_REGISTRY: dict[str, Callable[[], ClassificationTask]] = {}


def register_task(name: str, factory: Callable[[], ClassificationTask]) -> None:
    _REGISTRY[name] = factory


def get_task(name: str) -> ClassificationTask:
    if name not in _REGISTRY:
        raise KTMError(f"unknown task {name!r}; known: {', '.join(task_names())}")
    return _REGISTRY[name]()


def task_names() -> list[str]:
    return sorted(_REGISTRY)
