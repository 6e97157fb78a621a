"""Read and write example splits as JSONL (atomic writes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..io_utils import write_text_atomic
from .base import LabeledExample


def write_labeled_jsonl(path: str | Path, rows: Sequence[LabeledExample]) -> None:
    lines = []
    for r in rows:
        row = {"prompt": r.prompt, "label": r.label}
        if r.suffix is not None:
            row["suffix"] = r.suffix
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    write_text_atomic(path, "".join(lines))
