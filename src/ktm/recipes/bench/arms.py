"""Compare K values and same-budget baselines on one task: same data, steps and seed (the
arms are named as :mod:`.arm_spec` says).

Finished arms are not re-run; ``results.json``, ``results.md`` and the plots are rewritten
after every arm.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from ...errors import KTMError
from ...expansion import expanded_length
from ...io_utils import write_json_atomic, write_text_atomic
from ...packing import positions_read
from ..data import load_stages
from ..report import format_table
from ..run_config import RunConfig
from ..run_folder import RunFolder
from ..train import run_training
from .arm_spec import Arm, arm_config, parse_arm, with_steps

CLASSIFICATION_COLUMNS = [
    ("arm", "arm"),
    ("balanced_accuracy", "balanced acc"),
    ("macro_f1", "macro-F1"),
    ("accuracy", "accuracy"),
    ("majority_baseline", "majority"),
]
GENERATION_COLUMNS = [
    ("arm", "arm"),
    ("perplexity", "perplexity"),
    ("exact_match", "exact match"),
    ("edit_similarity", "edit sim"),
]
COST_COLUMNS = [
    ("tokens_in", "tokens in"),
    ("tokens_out", "positions read"),
    ("kept", "input kept"),
    ("prefill_ms", "prefill ms"),
    ("pretrain_minutes", "pre-train min"),
    ("train_minutes", "train min"),
    ("eval_minutes", "eval min"),
]


def _prefill_ms(model, examples, cfg: RunConfig, repeats: int = 3) -> float:
    """Mean over ``examples`` of the best of ``repeats`` times to the first token; a
    token-budget baseline's choice of tokens (Selective Context: a scoring pass) counts too."""
    from ..baselines import reduce_for
    from .speed import time_first_token

    def once(example) -> float:
        t0 = time.perf_counter()
        if cfg.reduction:
            (example,) = reduce_for(model, [example], cfg.reduction, cfg.reduction_k)
        ids, suffix = model.encode_prompts([example.model_prompt], [example.suffix or ""])
        chosen = time.perf_counter() - t0 if cfg.reduction else 0.0
        return chosen + time_first_token(model, ids, suffix).ttft_s

    return 1000 * statistics.mean(min(once(e) for _ in range(repeats)) for e in examples)


def _token_counts(tokenizer, examples, budget_k: int, reads_prompt: bool = True) -> dict:
    """Mean prompt tokens given and positions read (⌈T/K⌉ + suffix) per example."""
    from ...tasks.context_fit import token_counts

    prompts = token_counts(tokenizer, [e.prompt for e in examples], special=True)
    suffixes = token_counts(tokenizer, [e.suffix or "" for e in examples])
    tokens_in = sum(p + s for p, s in zip(prompts, suffixes))
    read = sum(positions_read(p, s, budget_k) for p, s in zip(prompts, suffixes))
    read = read if reads_prompt else 0
    n = len(examples)
    return {
        "tokens_in": round(tokens_in / n, 1),
        "tokens_out": round(read / n, 1),
        "kept": read / tokens_in,
    }


def _expanded_counts(model, examples) -> dict:
    """Mean prompt tokens given and positions read per example, counted from the layout the
    model chooses with selective expansion."""
    ids, suffixes = model.encode_prompts(
        [e.model_prompt for e in examples], [e.suffix or "" for e in examples]
    )
    raw = model.raw_tokens(ids, suffix_ids=suffixes)
    tokens_in = sum(len(p) + len(s) for p, s in zip(ids, suffixes))
    read = sum(expanded_length(len(p), model.k, r) + len(s) for p, r, s in zip(ids, raw, suffixes))
    n = len(examples)
    return {
        "tokens_in": round(tokens_in / n, 1),
        "tokens_out": round(read / n, 1),
        "kept": read / tokens_in,
    }


def _untrained_arm(arm: Arm, cfg: RunConfig, task, stage) -> dict:
    """Metrics of ``zeroshot`` (the bare base model), ``majority`` or ``copy``. Generation
    baselines are scored on the rows generation scores."""
    from collections import Counter

    import torch

    from ...config import KTMConfig
    from ...model import KTMModel
    from ...tasks.metrics import GEN_LIMIT_CAP, classification_metrics, generation_metrics
    from ..evaluate import evaluate_task

    t0 = time.perf_counter()
    limit = cfg.data.gen_limit if cfg.data.gen_limit is not None else GEN_LIMIT_CAP
    scored = list(stage.test)[:limit]
    if arm.name == "majority":
        answer = Counter(e.label for e in stage.train).most_common(1)[0][0]
        if task.kind == "classification":
            metrics = classification_metrics(
                [answer] * len(stage.test), [e.label for e in stage.test], task.positive
            )
        else:
            metrics = generation_metrics([answer] * len(scored), [e.label for e in scored])
    elif arm.name == "copy":
        metrics = generation_metrics([e.input_text for e in scored], [e.label for e in scored])
    else:
        model = KTMModel.from_base(
            cfg.model, KTMConfig(k=1, lora_r=0), dtype=getattr(torch, cfg.dtype)
        )
        metrics = evaluate_task(
            model,
            task,
            list(stage.test),
            cfg.eval_batch_size,
            cfg.data.gen_limit,
            cfg.data.max_answer_tokens,
        )
    return {"test": metrics, "train_seconds": 0.0, "eval_seconds": time.perf_counter() - t0}


def run_arms(
    base: RunConfig,
    arms: Sequence[str],
    out: str | Path,
    progress: bool = True,
    timing_examples: int = 16,
    jobs: int = 1,
    arm_steps: dict[str, int] | None = None,
) -> list[dict]:
    """Train and evaluate every arm; write ``results.json``, ``results.md`` and two plots
    (``pareto.png``: quality vs input kept; ``compute.png``: quality vs compute time).
    ``jobs`` > 1 trains that many arms at a time in worker processes (:mod:`.parallel`);
    ``arm_steps`` (name → steps) trains the named arms for other than ``base``'s steps."""
    import torch

    from ...model import KTMModel
    from ...model.base_models import load_tokenizer
    from ...tasks import get_task
    from .plots import plot_arms, quality_key

    bench = RunFolder(out, "bench")
    out = bench.path
    if len(set(arms)) != len(arms):
        raise KTMError("each arm may be named once")
    parsed = {name: parse_arm(name) for name in arms}  # validate all before training
    configs = {name: arm_config(base, name) for name in arms if parsed[name].trained}
    for name, steps in (arm_steps or {}).items():
        if name in configs:
            configs[name] = with_steps(configs[name], steps)
    task = get_task(base.data.task).with_data(base.data)
    if "copy" in arms and (task.kind != "generation" or not getattr(task, "long_field", None)):
        raise KTMError("the copy arm needs a generation task with an input to copy (commitpack)")
    tokenizer = load_tokenizer(base.model)
    stages, data_info = load_stages(base.data, tokenizer)
    stage = stages[-1]
    test = list(stage.test)
    bench.lock.acquire()  # one bench writes a folder at a time
    if jobs > 1:
        from .parallel import train_arms_in_parallel

        in_workers = set(train_arms_in_parallel(configs, out, jobs))
    else:
        in_workers = set()
    rows: list[dict] = []
    spent: list[float] = []
    for i, name in enumerate(arms, 1):
        arm, folder = parsed[name], out / name
        left = ""
        if spent:
            eta = statistics.mean(spent) * (len(arms) - i + 1) / 60
            left = f" (about {eta:.0f} min left for {len(arms) - i + 1} arms)"

        def run_arm(part: RunFolder, again: bool, i=i, name=name, arm=arm, left=left) -> None:
            t0 = time.perf_counter()
            if not arm.trained:
                print(f"ktm: arm {i}/{len(arms)} {name}: evaluating{left}", flush=True)
                part.finish(_untrained_arm(arm, base, task, stage))
                return
            print(f"ktm: arm {i}/{len(arms)} {name}: training{left}", flush=True)
            run_training(configs[name], part.path, resume=again, progress=progress)
            spent.append(time.perf_counter() - t0)

        metrics, ran = bench.run_part(name, run_arm)
        if not ran and name not in in_workers:
            print(f"ktm: arm {i}/{len(arms)} {name}: done before, reusing {folder}")
        row = {"arm": name, "kind": arm.kind, "budget_k": arm.budget_k, "k": arm.k}
        row.update(metrics["test"])
        reads = arm.name not in ("majority", "copy")
        row.update(_token_counts(tokenizer, test, arm.budget_k, reads))
        # the built-in pre-training phase is part of the arm's cost (0 when it has none)
        row["pretrain_minutes"] = round(metrics.get("pretrain", {}).get("train_seconds", 0) / 60, 2)
        row["train_minutes"] = round(metrics["train_seconds"] / 60, 2)
        row["eval_minutes"] = round(
            metrics.get("eval_seconds", metrics["test"].get("eval_seconds", 0.0)) / 60, 2
        )
        if arm.trained:
            cfg = configs[name]
            model = KTMModel.from_pretrained(
                folder / "model", base_model=cfg.model, dtype=getattr(torch, cfg.dtype)
            )
            if model.config.budget is not None:  # the layout depends on the ranking: count it
                row.update(_expanded_counts(model, test))
            row["prefill_ms"] = round(_prefill_ms(model, test[:timing_examples], cfg), 2)
            row["steps"] = metrics.get("steps")
        rows.append(row)
        _write_results(out, base, task.kind, rows, data_info, jobs)
        plot_arms(rows, quality_key(task.kind), out)
    bench.lock.release()
    return rows


def _write_results(
    out: Path, base: RunConfig, kind: str, rows: list[dict], data_info, jobs: int
) -> None:
    write_json_atomic(
        out / "results.json",
        {
            "config": base.to_dict(),
            "task_kind": kind,
            "data": data_info,
            "jobs": jobs,  # > 1: arms trained side by side, so their minutes compare
            "arms": rows,
        },
    )
    cols = (GENERATION_COLUMNS if kind == "generation" else CLASSIFICATION_COLUMNS) + COST_COLUMNS
    write_text_atomic(out / "results.md", format_table(rows, cols) + "\n")
