"""Classification metrics that a skewed label distribution cannot flatter."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


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
