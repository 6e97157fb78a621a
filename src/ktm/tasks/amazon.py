"""Amazon Reviews sentiment: ``Review: {text}, Label:`` → ``positive`` iff rating ≥ 3.5.

Sources: local JSONL/CSV with ``text`` and ``rating`` fields (``$KTM_DATA_DIR/amazon_reviews``
here, see its README), or the paper's Hugging Face dataset ``McAuley-Lab/Amazon-Reviews-2023``
(its ``raw/review_categories/{category}.jsonl``) with ``--hub``. Labels are skewed (~81%
positive), so reports carry balanced accuracy, macro-F1 and the majority baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import register_task
from .hub import hub_jsonl, seeded_split
from .record_task import RecordTask
from .records import BadRow, PromptTemplate, number_field

POSITIVE_RATING = 3.5
HUB_DATASET = "McAuley-Lab/Amazon-Reviews-2023"
DEFAULT_CATEGORY = "Amazon_Fashion"  # the paper's
HUB_TEST_SIZE = 50_000  # the paper's test size


@dataclass
class AmazonReviewsTask(RecordTask):
    def answer(self, record: dict) -> str:
        rating = number_field(record, "rating")
        if not 1.0 <= rating <= 5.0:
            raise BadRow(f"rating {rating} is outside 1-5")
        return "positive" if rating >= POSITIVE_RATING else "negative"

    def hub_records(self, data, split: str) -> list[dict]:
        """The paper's setup: the last 50k reviews of the category (after a seeded shuffle;
        at most half of a small category) are the test set, 10% of the rest the training set."""
        category = data.category or DEFAULT_CATEGORY
        rows = hub_jsonl(HUB_DATASET, f"raw/review_categories/{category}.jsonl")
        return seeded_split(rows, split, HUB_TEST_SIZE, data.data_seed, train_share=0.1)


def _amazon() -> AmazonReviewsTask:
    return AmazonReviewsTask(
        name="amazon",
        labels=("positive", "negative"),
        positive="negative",  # the minority class: its F1 is the informative one
        template=PromptTemplate("Review: {text}, Label:"),
        long_field="text",
        data_folder="amazon_reviews",
    )


register_task("amazon", _amazon)
