"""Amazon Reviews sentiment: ``Review: {text}, Label:`` → ``positive`` iff rating ≥ 3.5.

Sources: local JSONL/CSV with ``text`` and ``rating`` fields (``$KTM_DATA_DIR/amazon_reviews``
here, see its README), or the paper's Hugging Face dataset ``McAuley-Lab/Amazon-Reviews-2023``
(config ``raw_review_{category}``) with ``--hub``. Labels are skewed (~81% positive), so
reports carry balanced accuracy, macro-F1 and the majority baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import KTMError
from .base import register_task
from .record_task import RecordTask
from .records import BadRow, PromptTemplate, number_field

POSITIVE_RATING = 3.5
HUB_DATASET = "McAuley-Lab/Amazon-Reviews-2023"


@dataclass
class AmazonReviewsTask(RecordTask):
    def answer(self, record: dict) -> str:
        rating = number_field(record, "rating")
        if not 1.0 <= rating <= 5.0:
            raise BadRow(f"rating {rating} is outside 1-5")
        return "positive" if rating >= POSITIVE_RATING else "negative"

    def hub_records(self, data, split: str) -> list[dict]:
        """The paper's setup: the last 50k reviews of the category (after a seeded shuffle)
        are the test set, 10% of the rest the training set."""
        ds = load_hub_dataset(HUB_DATASET, f"raw_review_{data.category or 'Amazon_Fashion'}")
        order = list(range(len(ds)))
        import random

        random.Random(data.data_seed).shuffle(order)
        test, rest = order[-50_000:], order[:-50_000]
        idx = test if split == "test" else rest[: len(rest) // 10]
        return [ds[i] for i in idx]


def load_hub_dataset(name: str, config: str, split: str = "full"):
    try:
        import datasets
    except ImportError:
        raise KTMError("--hub needs the `datasets` package: pip install datasets") from None
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as e:  # network, auth, unknown config: one line, no traceback
        raise KTMError(f"cannot load {name} ({config}) from the hub: {e}") from None


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
