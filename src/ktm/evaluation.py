"""Evaluate a model on labelled examples, sharded over processes when there are several."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from .distributed import process_state
from .metrics import classification_metrics
from .model import KTMModel
from .tasks.base import ClassificationTask, LabeledExample


def predict_labels(
    model: KTMModel,
    examples: Sequence[LabeledExample],
    labels: Sequence[str],
    batch_size: int = 32,
    progress: bool = False,
) -> list[str]:
    """The model's label for each example (the most likely of ``labels``)."""
    preds: list[str] = []
    rng = range(0, len(examples), batch_size)
    if progress:
        from tqdm.auto import tqdm

        rng = tqdm(rng, desc="eval", unit="batch", leave=False)
    has_suffix = any(e.suffix for e in examples)
    for start in rng:
        chunk = examples[start : start + batch_size]
        suffixes = [e.suffix or "" for e in chunk] if has_suffix else None
        idx = model.classify([e.prompt for e in chunk], list(labels), suffixes)
        preds.extend(labels[i] for i in idx)
    return preds


def evaluate_classification(
    model: KTMModel,
    task: ClassificationTask,
    examples: Sequence[LabeledExample],
    batch_size: int = 32,
    progress: bool = False,
) -> dict:
    """Metrics of ``model`` on ``examples``, with token counts and wall time.

    Under ``accelerate launch`` each process predicts a shard; all get the full metrics.
    """
    from accelerate.utils import gather_object

    state = process_state()
    world, rank = state.num_processes, state.process_index
    mine = list(range(rank, len(examples), world))
    t0 = time.perf_counter()
    with torch.no_grad():
        preds = predict_labels(
            model, [examples[i] for i in mine], task.labels, batch_size, progress
        )
    pairs = list(zip(mine, preds))
    if world > 1:
        pairs = gather_object(pairs)
    ordered = [p for _, p in sorted(pairs)]
    metrics = classification_metrics(ordered, [e.label for e in examples], task.positive)
    metrics["eval_seconds"] = round(time.perf_counter() - t0, 2)
    return metrics
