"""Metrics: classification ones that a skewed label distribution cannot flatter, and
generation ones beside trivial answers (the commonest answer, a copy of the input)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

GEN_LIMIT_CAP = 100  # test rows scored by generation when --gen-limit is not given


def classification_metrics(
    predictions: Sequence[str], golds: Sequence[str], positive: str | None = None
) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall), macro-F1, F1 of ``positive``,
    and the majority-class baseline (accuracy of always answering the commonest label)."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} labels")
    n = len(golds)
    if n == 0:
        return {"n": 0}
    labels = sorted(set(golds) | set(predictions))
    counts = Counter(golds)
    correct = sum(p == g for p, g in zip(predictions, golds))

    def f1(label: str) -> float:
        tp = sum(p == g == label for p, g in zip(predictions, golds))
        fp = sum(p == label != g for p, g in zip(predictions, golds))
        fn = sum(g == label != p for p, g in zip(predictions, golds))
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    recalls = [
        sum(p == g for p, g in zip(predictions, golds) if g == label) / counts[label]
        for label in counts
    ]
    metrics = {
        "n": n,
        "accuracy": correct / n,
        "balanced_accuracy": sum(recalls) / len(recalls),
        "macro_f1": sum(f1(label) for label in labels if label in counts) / len(counts),
        "majority_baseline": counts.most_common(1)[0][1] / n,
        "majority_label": counts.most_common(1)[0][0],
    }
    if positive is not None:
        metrics[f"f1_{positive}"] = f1(positive)
        metrics[f"share_{positive}"] = counts.get(positive, 0) / n
    return metrics


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insert, delete, substitute: cost 1), O(len(a)·len(b)) with one
    vectorised pass per element of ``a``."""
    import numpy as np

    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    codes = {x: i for i, x in enumerate(set(a) | set(b))}
    bb = np.array([codes[x] for x in b])
    idx = np.arange(len(b) + 1)
    prev = idx.copy()
    for i, x in enumerate(a, 1):
        # cur[j] = min(prev[j] + 1, prev[j-1] + (a_i != b_j), cur[j-1] + 1); the last term is a
        # running minimum of (tmp[k] - k) + j, which np.minimum.accumulate does in one go.
        tmp = np.empty_like(prev)
        tmp[0] = i
        tmp[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bb != codes[x]))
        prev = np.minimum.accumulate(tmp - idx) + idx
    return int(prev[-1])


def edit_similarity(prediction: str, reference: str) -> float:
    """1 − character edit distance / the longer length (1.0: identical, 0.0: nothing shared)."""
    longest = max(len(prediction), len(reference))
    return 1.0 if longest == 0 else 1.0 - edit_distance(prediction, reference) / longest


def generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """Exact match and mean edit similarity, whitespace at the ends ignored by both."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    n = len(references)
    if n == 0:
        return {"generated": 0}
    exact = sum(p.strip() == r.strip() for p, r in zip(predictions, references))
    sims = [edit_similarity(p.strip(), r.strip()) for p, r in zip(predictions, references)]
    return {"generated": n, "exact_match": exact / n, "edit_similarity": sum(sims) / n}


def trivial_generation_metrics(
    references: Sequence[str], answers: Sequence[str], inputs: Sequence[str | None]
) -> dict:
    """What answering without reading the prompt scores on ``references``: always the
    commonest of ``answers`` (``trivial_*``), and copying each row's input where it has one
    (``copy_*``, the baseline of edits)."""
    if not references:
        return {}
    common = Counter(a.strip() for a in answers).most_common(1)[0][0]
    out = {f"trivial_{k}": v for k, v in _scores([common] * len(references), references).items()}
    if all(i is not None for i in inputs):
        out |= {f"copy_{k}": v for k, v in _scores(list(inputs), references).items()}
    return out


def _scores(predictions: Sequence[str], references: Sequence[str]) -> dict:
    m = generation_metrics(predictions, references)
    return {"exact_match": m["exact_match"], "edit_similarity": m["edit_similarity"]}
