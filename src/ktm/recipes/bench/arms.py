"""Compare K values and same-budget baselines on one task: same data, steps and seed.

Arms:
    ``k<K>``         K-token merging, ktm's recipe: the MLP merger + LoRA pre-trained on the
                     task's prompts (``--pretrain-steps``), then trained on the task;
                     ``k1`` is the uncompressed LoRA reference;
    ``k<K>-fresh``   MLP merger trained on the task alone, from the mean-pooling init;
    ``k<K>-mean``    block-mean merger + LoRA;
    ``k<K>-random``  the paper's recipe: MLP merger with its random init, task alone;
    ``k<K>-pre``     MLP merger + LoRA started from ``--init-from`` (e.g. ``ktm pretrain``);
                     the other arms do not use it;
    ``first<K>``, ``last<K>``, ``prune<K>``
                     keep ⌈T/K⌉ prompt tokens (the start, the end, or the most informative by
                     the base model's self-information) + LoRA at K = 1
                     (:mod:`ktm.tasks.token_budget`);
    ``zeroshot``     the base model, untrained, uncompressed;
    ``majority``     always the commonest training answer (label or text);
    ``copy``         the input unchanged (edit tasks: the file before the edit).

Finished arms are not re-run; ``results.json``, ``results.md`` and the plots are rewritten
after every arm.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from ...errors import KTMError
from ...io_utils import write_json_atomic, write_text_atomic
from ...packing import positions_read
from ..data import load_stages
from ..report import format_table
from ..run_config import RunConfig
from ..run_folder import RunFolder
from ..train import run_training

_ARM = re.compile(
    r"^(?:k(\d+)(?:-(mean|random|pre|fresh))?|(first|last|prune)(\d+)|(zeroshot|majority|copy))$"
)

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


@dataclasses.dataclass(frozen=True)
class Arm:
    """What an arm name means: its K-token merging setup or its baseline."""

    name: str
    k: int = 1  # merging factor of the model that runs
    budget_k: int = 1  # the K whose input budget the arm matches
    merger: str = "mlp"
    merger_init: str | None = None
    reduction: str | None = None
    trained: bool = True  # zeroshot, majority and copy train nothing
    pretrained: bool = False  # starts from the bench's --init-from
    fresh: bool = False  # no pre-training phase (the task alone)

    @property
    def kind(self) -> str:
        if self.name in ("zeroshot", "majority", "copy"):
            return self.name
        if self.pretrained:
            return "merge-pretrained"
        return self.reduction or ("mean" if self.merger == "mean" else "merge")


def parse_arm(name: str) -> Arm:
    m = _ARM.match(name)
    if not m:
        raise KTMError(
            f"bad arm {name!r}: use k<K>, k<K>-fresh, k<K>-mean, k<K>-random, k<K>-pre, first<K>, "
            "last<K>, "
            "prune<K>, zeroshot, majority or copy (e.g. k4,k1,k4-mean,first4,prune4)"
        )
    k, variant, reduction, rk, fixed = m.groups()
    if fixed:
        return Arm(name, trained=False)
    if reduction:
        return Arm(name, k=1, budget_k=int(rk), reduction=reduction)
    if int(k) < 1:
        raise KTMError(f"bad arm {name!r}: K must be >= 1")
    return Arm(
        name,
        k=int(k),
        budget_k=int(k),
        merger="mean" if variant == "mean" else "mlp",
        merger_init="random" if variant == "random" else None,
        pretrained=variant == "pre",
        fresh=variant in ("fresh", "random"),
    )


def arm_config(base: RunConfig, name: str) -> RunConfig:
    """``base`` with the K, merger or reduction that arm ``name`` names; only ``-pre`` arms
    keep ``base.init_from``."""
    arm = parse_arm(name)
    if arm.pretrained and not base.init_from:
        raise KTMError(f"arm {name!r} starts from a pre-trained merger: give --init-from")
    ktm = dataclasses.replace(
        base.ktm,
        k=arm.k,
        merger=arm.merger,
        merger_init=arm.merger_init or base.ktm.merger_init,
    )
    init_from = base.init_from if arm.pretrained else None
    cfg = dataclasses.replace(
        base,
        ktm=ktm,
        init_from=init_from,
        pretrain_steps=None,
        reduction=arm.reduction,
        reduction_k=arm.budget_k if arm.reduction else 1,
    )
    steps = 0 if arm.fresh else (base.pretrain_steps if cfg.pretraining_applies else None)
    return dataclasses.replace(cfg, pretrain_steps=steps)


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
) -> list[dict]:
    """Train and evaluate every arm; write ``results.json``, ``results.md`` and two plots
    (``pareto.png``: quality vs input kept; ``compute.png``: quality vs compute time)."""
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
    task = get_task(base.data.task).with_data(base.data)
    if "copy" in arms and (task.kind != "generation" or not getattr(task, "long_field", None)):
        raise KTMError("the copy arm needs a generation task with an input to copy (commitpack)")
    tokenizer = load_tokenizer(base.model)
    stages, data_info = load_stages(base.data, tokenizer)
    stage = stages[-1]
    test = list(stage.test)
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
        if not ran:
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
            model = KTMModel.from_pretrained(folder / "model", dtype=getattr(torch, cfg.dtype))
            row["prefill_ms"] = round(_prefill_ms(model, test[:timing_examples], cfg), 2)
            row["steps"] = metrics.get("steps")
        rows.append(row)
        _write_results(out, base, task.kind, rows, data_info)
        plot_arms(rows, quality_key(task.kind), out)
    return rows


def _write_results(out: Path, base: RunConfig, kind: str, rows: list[dict], data_info) -> None:
    write_json_atomic(
        out / "results.json",
        {"config": base.to_dict(), "task_kind": kind, "data": data_info, "arms": rows},
    )
    cols = (GENERATION_COLUMNS if kind == "generation" else CLASSIFICATION_COLUMNS) + COST_COLUMNS
    write_text_atomic(out / "results.md", format_table(rows, cols) + "\n")
