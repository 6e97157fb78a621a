"""Records from the Hugging Face hub, read from the datasets' raw JSONL files.

Both paper datasets (``McAuley-Lab/Amazon-Reviews-2023``, ``bigcode/commitpackft``) come with a
loading script, which ``datasets`` >= 4 refuses to run ("Dataset scripts are no longer
supported"); the JSONL files those scripts read are plain files in the same repositories, so
ktm loads them directly with the ``json`` builder (cached by ``datasets`` like any download).
"""

from __future__ import annotations

import random

from ..errors import KTMError


def hub_jsonl(repo: str, path: str):
    """The rows of ``path`` in the hub dataset ``repo`` (a ``datasets.Dataset``: indexable
    by position, each row a dict)."""
    try:
        import datasets
    except ImportError:
        raise KTMError("--hub needs the `datasets` package: pip install datasets") from None
    url = f"hf://datasets/{repo}/{path}"
    try:
        return datasets.load_dataset("json", data_files=url, split="train")
    except Exception as e:  # network, auth, unknown category: one line, no traceback
        raise KTMError(f"cannot load {url} from the hub: {e}") from None


def seeded_split(
    rows, split: str, test_size: int, seed: int, train_share: float = 1.0
) -> list[dict]:
    """The ``split`` part of ``rows`` after a seeded shuffle: the last ``test_size`` rows (at
    most half of them) are the test set, the first ``train_share`` of the rest the training
    set. Both splits come from the same shuffle, so they never share a row."""
    if split not in ("train", "test"):
        raise KTMError(f"split must be train or test, got {split!r}")
    n = len(rows)
    if n < 2:
        raise KTMError(f"the hub data has {n} row(s); it needs at least 2 to split")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    test_n = min(test_size, n // 2)
    test, rest = order[n - test_n :], order[: n - test_n]
    idx = test if split == "test" else rest[: max(1, int(len(rest) * train_share))]
    return [rows[i] for i in idx]
