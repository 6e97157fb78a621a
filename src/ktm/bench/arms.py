"""Compare K values and mergers on one task: same data, steps and seed for every arm.

An arm is named ``k<K>`` (MLP merger), ``k<K>-mean`` (block mean) or ``k<K>-random``
(MLP merger with the paper's random init). Finished arms are not re-run.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

from ..errors import KTMError
from ..io_utils import read_json, write_json_atomic, write_text_atomic
from ..report import format_table
from ..runs import RunConfig, load_stages, run_training

_ARM = re.compile(r"^k(\d+)(?:-(mean|random))?$")

COLUMNS = [
    ("arm", "arm"),
    ("balanced_accuracy", "balanced acc"),
    ("accuracy", "accuracy"),
    ("f1_true", "F1 true"),
    ("majority_baseline", "majority"),
    ("tokens_in", "tokens in"),
    ("tokens_out", "tokens out"),
    ("kept", "input kept"),
    ("prefill_ms", "prefill ms"),
    ("train_minutes", "train min"),
]


def arm_config(base: RunConfig, arm: str) -> RunConfig:
    """``base`` with the K and merger that ``arm`` names."""
    m = _ARM.match(arm)
    if not m:
        raise KTMError(f"bad arm {arm!r}: use k<K>, k<K>-mean or k<K>-random (e.g. k4-mean)")
    k, variant = int(m.group(1)), m.group(2)
    ktm = dataclasses.replace(
        base.ktm,
        k=k,
        merger="mean" if variant == "mean" else "mlp",
        merger_init="random" if variant == "random" else base.ktm.merger_init,
    )
    return dataclasses.replace(base, ktm=ktm)


def _prefill_ms(model, prompts: Sequence[str], repeats: int = 3) -> float:
    from .speed import time_first_token

    ids, _ = model.encode_prompts(list(prompts))
    per_prompt = []
    for p in ids:
        per_prompt.append(min(time_first_token(model, [p]).ttft_s for _ in range(repeats)))
    return 1000 * statistics.mean(per_prompt)


def run_arms(
    base: RunConfig,
    arms: Sequence[str],
    out: str | Path,
    progress: bool = True,
    timing_prompts: int = 16,
) -> list[dict]:
    """Train and evaluate every arm; write ``results.json`` and ``results.md`` to ``out``."""
    import torch

    from ..model import KTMModel

    out = Path(out)
    configs = {arm: arm_config(base, arm) for arm in arms}  # validate all before training
    if len(set(arms)) != len(arms):
        raise KTMError("each arm may be named once")
    from ..base_models import load_tokenizer

    test = list(load_stages(base.data, load_tokenizer(base.model))[0][-1].test)
    rows = []
    for i, (arm, cfg) in enumerate(configs.items(), 1):
        folder = out / arm
        if (folder / "metrics.json").is_file():
            print(f"ktm: arm {i}/{len(arms)} {arm}: done before, reusing {folder}")
        else:
            print(f"ktm: arm {i}/{len(arms)} {arm}: training")
            run_training(cfg, folder, resume=(folder / "config.json").is_file(), progress=progress)
        metrics = read_json(folder / "metrics.json", "arm metrics")
        model = KTMModel.from_pretrained(folder / "model", dtype=getattr(torch, cfg.dtype))
        prompts = [e.prompt for e in test]
        batch_ids, suffix = model.encode_prompts(prompts, [e.suffix or "" for e in test])
        tokens_in = sum(len(p) + len(s) for p, s in zip(batch_ids, suffix))
        tokens_out = sum(-(-len(p) // cfg.ktm.k) + len(s) for p, s in zip(batch_ids, suffix))
        rows.append(
            {
                "arm": arm,
                "k": cfg.ktm.k,
                "merger": cfg.ktm.merger,
                "merger_init": cfg.ktm.merger_init,
                **metrics["test"],
                "tokens_in": round(tokens_in / len(test), 1),
                "tokens_out": round(tokens_out / len(test), 1),
                "kept": tokens_out / tokens_in,
                "prefill_ms": round(_prefill_ms(model, prompts[:timing_prompts]), 2),
                "train_minutes": round(metrics["train_seconds"] / 60, 2),
                "steps": metrics.get("steps"),
            }
        )
        write_json_atomic(out / "results.json", {"config": base.to_dict(), "arms": rows})
    table = format_table(rows, COLUMNS)
    write_text_atomic(out / "results.md", table + "\n")
    return rows
