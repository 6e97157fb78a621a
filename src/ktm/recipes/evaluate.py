"""Evaluate a model on labelled examples, sharded over processes when there are several."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ..distributed import process_state
from ..errors import KTMError
from ..model import KTMModel
from ..tasks.base import LabeledExample, Task
from ..tasks.metrics import (
    GEN_LIMIT_CAP,
    classification_metrics,
    generation_metrics,
    trivial_generation_metrics,
)


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
        idx = model.classify([e.model_prompt for e in chunk], list(labels), suffixes)
        preds.extend(labels[i] for i in idx)
    return preds


def evaluate_classification(
    model: KTMModel,
    task: Task,
    examples: Sequence[LabeledExample],
    batch_size: int = 32,
    progress: bool = False,
) -> dict:
    """Metrics of ``model`` on ``examples``, with token counts and wall time.

    Under ``accelerate launch`` each process predicts a shard; all get the full metrics.
    """
    from accelerate.utils import gather_object

    world, _, mine = _shard(len(examples))
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


def _shard(n: int) -> tuple[int, int, list[int]]:
    state = process_state()
    return (
        state.num_processes,
        state.process_index,
        list(range(state.process_index, n, state.num_processes)),
    )


def evaluate_generation(
    model: KTMModel,
    examples: Sequence[LabeledExample],
    batch_size: int = 8,
    gen_limit: int | None = None,
    max_new_tokens: int | None = None,
    progress: bool = False,
) -> dict:
    """Perplexity of the reference answers (answer tokens only, EOS included) over all
    ``examples``; greedy generation on the first ``gen_limit`` (default: all, at most
    :data:`GEN_LIMIT_CAP`): exact match, edit similarity, the number scored (``generated``),
    and on the same rows the trivial answers (the commonest answer; a copy of the input).

    Generation runs to the reference length + 16 tokens unless ``max_new_tokens`` is given.
    """
    gen_limit = min(len(examples), GEN_LIMIT_CAP if gen_limit is None else gen_limit)
    import math

    from accelerate.utils import gather_object

    from ..sampling import SamplingConfig

    world, _, mine = _shard(len(examples))
    t0 = time.perf_counter()
    has_suffix = any(e.suffix for e in examples)
    nll, count, generated = 0.0, 0, []
    steps = range(0, len(mine), batch_size)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="eval", unit="batch", leave=False)
    with torch.no_grad():
        for start in steps:
            chunk = [examples[i] for i in mine[start : start + batch_size]]
            suffixes = [e.suffix or "" for e in chunk] if has_suffix else None
            prompts = [e.model_prompt for e in chunk]
            prompt_ids, suffix_ids = model.encode_prompts(prompts, suffixes)
            answer_ids = model.encode_answers([e.label for e in chunk])
            nll += model.answer_nll(prompt_ids, answer_ids, suffix_ids).item()
            count += sum(map(len, answer_ids))
            for j, (i, a) in enumerate(zip(mine[start : start + batch_size], answer_ids)):
                if i >= gen_limit:
                    continue
                batch = model.compress_ids(prompt_ids[j : j + 1], suffix_ids[j : j + 1])
                cfg = SamplingConfig(max_new_tokens=max_new_tokens or len(a) + 16)
                ids = model.generate_ids(batch, cfg)[0]
                generated.append((i, model.tokenizer.decode(ids, skip_special_tokens=True)))
    totals = [(nll, count)]
    if world > 1:
        totals, generated = gather_object(totals), gather_object(generated)
    nll, count = sum(t[0] for t in totals), sum(t[1] for t in totals)
    generated.sort()
    metrics = {
        "n": len(examples),
        "answer_tokens": count,
        "nll_per_token": nll / count,
        "perplexity": math.exp(nll / count),
        **generation_metrics([g for _, g in generated], [examples[i].label for i, _ in generated]),
        **trivial_generation_metrics(
            [e.label for e in examples[:gen_limit]],
            [e.label for e in examples],
            [e.input_text for e in examples[:gen_limit]],
        ),
    }
    metrics["eval_seconds"] = round(time.perf_counter() - t0, 2)
    return metrics


def evaluate_task(
    model: KTMModel,
    task: Task,
    examples: Sequence[LabeledExample],
    batch_size: int = 32,
    gen_limit: int | None = None,
    max_new_tokens: int | None = None,
    progress: bool = False,
) -> dict:
    """The task's metrics: classification or generation, whichever ``task.kind`` is."""
    if task.kind == "generation":
        return evaluate_generation(
            model, examples, max(1, batch_size // 4), gen_limit, max_new_tokens, progress
        )
    return evaluate_classification(model, task, examples, batch_size, progress)


def evaluate_checkpoint(
    path: str,
    data,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 32,
    base_model: str | None = None,
) -> tuple[dict, str]:
    """``ktm eval``: the saved model at ``path`` (or a run folder's) on a split of the data
    ``data`` (a :class:`ktm.recipes.data.DataConfig`) names. Returns (metrics, task kind)."""
    from ..tasks import get_task
    from .data import context_limit, load_stages
    from .start import model_folder

    task = get_task(data.task).with_data(data)
    folder = model_folder(path)
    model = KTMModel.from_pretrained(folder, base_model=base_model)
    how, budget_k = _run_reduction(path)
    stages, data_info = load_stages(data, model.tokenizer, context_limit(model, budget_k))
    if how:  # a token-budget baseline's run: its model reads the kept tokens only
        from .baselines import reduce_stages

        stages = reduce_stages(model, stages, how, budget_k)
    rows = list(stages[-1].test if split == "test" else stages[-1].train)
    rows = rows[:limit] if limit else rows
    metrics = evaluate_task(
        model, task, rows, batch_size, data.gen_limit, data.max_answer_tokens, progress=True
    )
    metrics.update({"checkpoint": str(folder), "k": model.k, "split": split,
                    "stage": stages[-1].name})  # fmt: skip
    if data_info:
        metrics["data"] = data_info
    return metrics, task.kind


def _run_reduction(path: str) -> tuple[str | None, int | None]:
    """(how, K) of the token-budget baseline a run folder trained, or (None, None)."""
    from .run_config import RunConfig
    from .run_folder import RunFolder

    run = RunFolder(path, "train")
    if not (run.started_before and (run.path / "model").is_dir()):
        return None, None
    try:
        cfg = run.read_config(RunConfig)
    except KTMError:
        return None, None
    return (cfg.reduction, cfg.reduction_k) if cfg.reduction else (None, None)
