"""CommitPackFT (python): rewrite a file as its commit message asks; scored on the new file.

Sources: local JSONL with ``old_contents``, ``subject``, ``new_contents`` fields
(``$KTM_DATA_DIR/commitpack`` here, split by repository), or ``bigcode/commitpackft``
(its ``data/{language}/data.jsonl``, default python) with ``--hub``. Metrics: perplexity of
the new content (answer tokens only) and, on a generation subset, exact match and edit similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import register_task
from .hub import hub_jsonl, seeded_split
from .record_task import RecordTask
from .records import PromptTemplate, text_field

PROMPT = (
    "Update the old python code content based on the instructions.\n"
    "Old Content: {old_contents}\nInstructions: {subject}\nNew Content:\n"
)
HUB_DATASET = "bigcode/commitpackft"
HUB_TEST_SIZE = 5600  # the paper's test size


@dataclass
class CommitPackTask(RecordTask):
    def answer(self, record: dict) -> str:
        return text_field(record, "new_contents")

    def hub_records(self, data, split: str) -> list[dict]:
        """The paper's setup: 5,600 test records of the language (after a seeded shuffle; at
        most half of a small language), the rest for training."""
        rows = hub_jsonl(HUB_DATASET, f"data/{data.category or 'python'}/data.jsonl")
        return seeded_split(rows, split, HUB_TEST_SIZE, data.data_seed)


def _commitpack() -> CommitPackTask:
    return CommitPackTask(
        name="commitpack",
        kind="generation",
        template=PromptTemplate(PROMPT),
        long_field="old_contents",
        data_folder="commitpack",
    )


register_task("commitpack", _commitpack)
