"""`ktm bench`: compare arms on a task, or measure speed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import KTMError
from .generate import build
from .specs import BenchArms, PrefillBenchOptions, ServeBenchOptions, TrainSpeedOptions


def task_bench(task: str) -> Callable[[dict], int]:
    """``ktm bench TASK``: train every arm with the same data, steps and seed; print and save
    the comparison."""

    def bench(values: dict) -> int:
        from ..recipes.bench.arm_spec import parse_arm_steps
        from ..recipes.bench.arms import run_arms
        from ..recipes.run_config import RunConfig

        if values.get("task", task) != task:
            raise KTMError(f"`ktm bench {task}` runs the {task} task; leave --task out")
        o = build(BenchArms, values)
        cfg = build(RunConfig, {**values, "task": task})
        arms = [a.strip() for a in o.arms.split(",") if a.strip()]
        steps = parse_arm_steps(o.arm_steps, arms)
        run_arms(cfg, arms, o.out, progress=o.progress, jobs=o.jobs, arm_steps=steps)
        print((Path(o.out) / "results.md").read_text(), end="")
        return 0

    return bench


def _positive(values: list[int], what: str) -> None:
    if not values or min(values) < 1:
        raise KTMError(f"{what} must be integers >= 1, got {','.join(map(str, values))!r}")


def _machine() -> dict:
    import os
    import platform

    import torch

    return {
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }


def speed(values: dict) -> int:
    """Time to first token per K and prompt length, side by side; writes JSON."""
    import torch

    from ..io_utils import write_json_atomic
    from ..recipes.bench.memory import peak_rss_mib
    from ..recipes.bench.plots import plot_speed
    from ..recipes.bench.speed import build_arms, prefill_benchmark
    from ..recipes.report import format_table

    args = build(PrefillBenchOptions, values)
    _positive(args.k, "--k"), _positive(args.lengths, "--lengths")
    _positive(args.batch_sizes, "--batch-sizes")
    arms = build_arms(
        args.model,
        args.k,
        dtype=getattr(torch, args.dtype),
        merger_hidden_factor=args.merger_hidden_factor,
        merger_context=args.merger_context,
        merger_layers=args.merger_layers,
        budget=args.budget,
    )

    def save(rows: list[dict]) -> None:  # after every cell: a long grid keeps what it measured
        write_json_atomic(
            args.out,
            {
                "command": "ktm " + " ".join(sys.argv[1:]),
                "model": args.model,
                "dtype": args.dtype,
                "merger_hidden_factor": args.merger_hidden_factor,
                "merger_context": args.merger_context,
                "merger_layers": args.merger_layers,
                "budget": args.budget,
                "repeats": args.repeats,
                "decode_steps": args.decode_steps,
                "machine": _machine(),
                "peak_rss_mib": peak_rss_mib(),
                "rows": rows,
            },
        )
        last = rows[-1]
        print(f"ktm: measured {last['tokens']} tokens, batch {last['batch']}", file=sys.stderr)

    rows = prefill_benchmark(
        arms,
        args.lengths,
        args.batch_sizes,
        args.repeats,
        decode_steps=args.decode_steps,
        on_cell=save,
    )
    plot_speed(rows, Path(args.out).with_suffix(".png"))
    cols = [
        (c, c)
        for c in (
            "tokens",
            "batch",
            "k",
            "positions",
            "ttft_s",
            "merger_share",
            "speedup_vs_k1",
            "flops_ratio_vs_k1",
            "decode_tokens_per_s",
            "decode_vs_k1",
            "kv_cache_mib",
            "prefill_peak_mib",
        )
    ]
    print(format_table(rows, cols))
    return 0


def train_speed(values: dict) -> int:
    """Training throughput per K on tree batches, steps interleaved; writes JSON."""
    import torch

    from ..io_utils import write_json_atomic
    from ..recipes.bench.train_speed import train_speed_benchmark
    from ..recipes.report import format_table
    from ..tasks.tree import get_stage

    args = build(TrainSpeedOptions, values)
    get_stage(args.stage)
    _positive(args.k, "--k")
    rows = train_speed_benchmark(
        args.model,
        args.k,
        args.steps,
        batch_size=args.batch_size,
        stage=args.stage,
        dtype=getattr(torch, args.dtype),
        lora_dropout=args.lora_dropout,
        merger_hidden_factor=args.merger_hidden_factor,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
    )
    write_json_atomic(
        args.out,
        {
            "command": "ktm " + " ".join(sys.argv[1:]),
            "model": args.model,
            "machine": _machine(),
            "rows": rows,
        },
    )
    print(format_table(rows, [(c, c) for c in rows[0]]))
    return 0


def serve_load(values: dict) -> int:
    """Throughput of ktm serve, one client vs many, on tree prompts; writes JSON."""
    import random

    import torch

    from ..config import KTMConfig
    from ..io_utils import write_json_atomic
    from ..model import KTMModel
    from ..recipes.bench.serve_load import serve_load_benchmark
    from ..recipes.start import model_folder
    from ..tasks.tree import STAGES, random_tree, tree_prompt

    args = build(ServeBenchOptions, values)
    if args.checkpoint:
        model = KTMModel.from_pretrained(model_folder(args.checkpoint), base_model=args.base_model)
    else:
        torch.manual_seed(0)
        model = KTMModel.from_base(args.model, KTMConfig(k=args.k))
    rng = random.Random(0)
    prompts = []
    for _ in range(args.requests):
        tree = random_tree(STAGES["medium"], rng)
        prompts.append(tree_prompt(tree.render(), tree.names[0], tree.names[-1]))
    result = serve_load_benchmark(
        model, prompts, args.clients, args.max_tokens, args.max_batch, args.soak_seconds
    )
    result.update({"command": "ktm " + " ".join(sys.argv[1:]), "machine": _machine(),
                   "k": model.k, "max_tokens": args.max_tokens})  # fmt: skip
    write_json_atomic(args.out, result)
    keys = ("sequential", "concurrent", "batching_gain", "soak")
    print(json.dumps({k: result[k] for k in keys if k in result}))
    return 0
