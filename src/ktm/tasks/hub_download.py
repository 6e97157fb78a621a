"""``ktm data amazon|commitpack``: a paper benchmark from the Hugging Face hub, written as the
local train/test JSONL files every task reads (``--data DIR``).

The splits are the paper's (see each task's ``hub_records``); the rows keep only the fields the
task reads, so a folder is small and its provenance is stated in its ``meta.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import KTMError
from ..io_utils import write_json_atomic, write_text_atomic
from .base import get_task

FIELDS = {
    "amazon": ("text", "title", "rating"),
    "commitpack": ("old_contents", "subject", "new_contents"),
}
SOURCES = {
    "amazon": "McAuley-Lab/Amazon-Reviews-2023 (raw/review_categories/<category>.jsonl)",
    "commitpack": "bigcode/commitpackft (data/<language>/data.jsonl)",
}
LICENCES = {
    "amazon": "research use, see the dataset card of McAuley-Lab/Amazon-Reviews-2023",
    "commitpack": "permissive licences per repository, see bigcode/commitpackft's card",
}


def download_task_data(task_name: str, out: str | Path, category: str | None = None) -> dict:
    """Write ``train.jsonl``, ``test.jsonl`` and ``meta.json`` of ``task_name`` to ``out``.

    Needs ``datasets`` (``pip install "ktm[hub]"``) and a reachable hub; a clear
    :class:`KTMError` otherwise. Returns what ``meta.json`` says.
    """
    from dataclasses import dataclass

    if task_name not in FIELDS:
        raise KTMError(f"no hub dataset for task {task_name!r}; choose {', '.join(FIELDS)}")
    out = Path(out)
    if (out / "meta.json").is_file():
        raise KTMError(f"{out} already holds data; choose another --out")
    task = get_task(task_name)

    @dataclass
    class _Split:  # what hub_records reads of a data config
        category: str | None
        data_seed: int = 0

    counts = {}
    for split in ("train", "test"):
        rows = task.hub_records(_Split(category), split)
        keep = FIELDS[task_name]
        lines = [json.dumps({k: r.get(k) for k in keep}, ensure_ascii=False) + "\n" for r in rows]
        write_text_atomic(out / f"{split}.jsonl", "".join(lines))
        counts[split] = len(lines)
    meta = {
        "task": task_name,
        "source": SOURCES[task_name],
        "category": category,
        "licence": LICENCES[task_name],
        "split": "the paper's: a seeded shuffle (seed 0), see the task's hub_records",
        "rows": counts,
    }
    write_json_atomic(out / "meta.json", meta)
    return meta
