"""The `ktm` argument parser: every command and its options."""

from __future__ import annotations

import argparse

from ..config import DTYPES
from .bench import cmd_bench_serve, cmd_bench_speed, cmd_bench_task, cmd_bench_train_speed
from .commands import (
    cmd_data_tree,
    cmd_eval,
    cmd_export,
    cmd_generate,
    cmd_pretrain,
    cmd_serve,
    cmd_train,
)
from .options import (
    Parser,
    add_curriculum_options,
    add_data_options,
    add_model_options,
    add_speed_options,
    add_start_options,
    add_train_options,
    non_negative_int,
    positive_int,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ktm",
        description="K-Token Merging: train, evaluate and run "
        "latent-space prompt compressors for causal LMs.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"ktm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    data = sub.add_parser("data", help="make benchmark data")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    tree = data_sub.add_parser("tree", help="generate Textualized Tree train/test splits")
    tree.add_argument("--stage", default="small", help="curriculum stage (small … x3large)")
    tree.add_argument("--train-trees", type=positive_int, default=2000)
    tree.add_argument("--test-trees", type=positive_int, default=100)
    tree.add_argument("--seed", type=int, default=0)
    tree.add_argument("--no-balance", action="store_true", help="keep the natural label skew")
    tree.add_argument("--balance-test", action="store_true")
    tree.add_argument("--split-question", action="store_true")
    tree.add_argument("--out", required=True, help="output folder")
    tree.set_defaults(func=cmd_data_tree)

    tr = sub.add_parser("train", help="train a merger + LoRA")
    add_model_options(tr)
    add_train_options(tr)
    add_curriculum_options(tr)
    add_data_options(tr, for_training=True)
    tr.add_argument("--out", required=True, help="run folder (config, checkpoints, metrics, model)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument("--no-progress", action="store_true")
    add_start_options(tr)
    tr.set_defaults(func=cmd_train)

    pre = sub.add_parser(
        "pretrain",
        help="task-agnostic merger pre-training: regenerate plain text from merged prefixes",
    )
    add_model_options(pre)
    add_train_options(pre)
    pre.add_argument(
        "--text",
        action="append",
        default=[],
        help="a .txt file (paragraphs) or .jsonl file (repeatable); and/or --task",
    )
    pre.add_argument(
        "--task",
        default=None,
        help="the training prompts of this task (labels unused), read with the data options "
        "below; read before any --text",
    )
    add_data_options(pre, for_training=False, with_task=False)
    pre.add_argument("--text-field", default="text", help="JSONL field holding the text")
    pre.add_argument("--chunk-tokens", type=positive_int, default=64, help="tokens per chunk")
    pre.add_argument("--max-chunks", type=positive_int, default=20000)
    pre.add_argument(
        "--holdout-chunks",
        type=positive_int,
        default=64,
        help="chunks kept out of training to measure reconstruction loss",
    )
    pre.add_argument(
        "--k-warmup",
        default=None,
        help="smaller K to pre-train first, comma-separated, each passing its LoRA on "
        "(default: 2, 4, … below --k; 'none' skips)",
    )
    pre.add_argument(
        "--k-warmup-steps",
        type=non_negative_int,
        default=None,
        help="steps at each warm-up K (default: a tenth of --steps, at most 40; 0 skips it)",
    )
    pre.add_argument(
        "--init-lora-from",
        default=None,
        help="start the LoRA from this saved model or checkpoint at any K (e.g. a finished "
        "pre-training at a smaller K) instead of the warm-ups",
    )
    pre.add_argument("--out", required=True, help="run folder; the merger lands in <out>/model")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--no-progress", action="store_true")
    pre.set_defaults(func=cmd_pretrain)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on a task's test split")
    ev.add_argument("checkpoint", help="a saved model folder, or a run folder (uses <run>/model)")
    add_data_options(ev, for_training=False)
    ev.add_argument("--split", default="test", choices=["train", "test"])
    ev.add_argument(
        "--limit", type=positive_int, default=None, help="evaluate the first N examples"
    )
    ev.add_argument("--out", default=None, help="write the metrics JSON here")
    ev.set_defaults(func=cmd_eval)

    gen = sub.add_parser("generate", help="compress prompts and generate answers")
    gen.add_argument("checkpoint", help="a saved model folder or run folder")
    gen.add_argument(
        "--prompt", action="append", required=True, help="text to compress (repeatable)"
    )
    gen.add_argument(
        "--suffix",
        action="append",
        default=None,
        help="uncompressed text after each prompt (repeat once per prompt)",
    )
    gen.add_argument("--max-new-tokens", type=positive_int, default=32)
    gen.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--json", action="store_true", help="print JSON with token counts")
    gen.set_defaults(func=cmd_generate)

    exp = sub.add_parser(
        "export", help="export for vLLM: LoRA merged into the base, merger beside it"
    )
    exp.add_argument("checkpoint", help="a saved model folder or run folder")
    exp.add_argument("--format", default="vllm", choices=["vllm"])
    exp.add_argument("--out", required=True, help="new folder for the exported model")
    exp.add_argument("--dtype", default="float32", choices=DTYPES)
    exp.set_defaults(func=cmd_export)

    srv = sub.add_parser("serve", help="OpenAI-compatible HTTP server for a ktm model")
    srv.add_argument("checkpoint", help="a saved model folder or run folder")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    srv.add_argument("--port", type=positive_int, default=8000)
    srv.add_argument(
        "--api-key", default=None, help="require `Authorization: Bearer KEY` on /v1/ routes"
    )
    srv.add_argument("--model-name", default="ktm", help="the model id clients ask for")
    srv.add_argument(
        "--max-prompt-tokens",
        type=positive_int,
        default=8192,
        help="longest prompt accepted, in tokens before compression",
    )
    srv.add_argument("--max-batch", type=positive_int, default=8, help="requests per batch")
    srv.add_argument(
        "--batch-wait-ms", type=float, default=10.0, help="how long a batch waits to fill"
    )
    srv.add_argument("--dtype", default="float32", choices=DTYPES)
    srv.set_defaults(func=cmd_serve)

    bench = sub.add_parser("bench", help="measure: compare arms on a task, or prefill speed")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, parser_class=Parser)
    bench_parsers = []
    for task_name, about in (
        ("tree", "Textualized Tree"),
        ("amazon", "Amazon Reviews sentiment"),
        ("commitpack", "CommitPackFT code edits"),
        ("custom", "your own data (--train-file/--test-file, --template, --answer-field)"),
    ):
        bt = bench_sub.add_parser(
            task_name, help=f"train and compare arms (K values, baselines) on {about}"
        )
        bt.add_argument(
            "--arms",
            default="k4,k1,k4-mean",
            help="comma-separated: k<K>, k<K>-mean, k<K>-random, first<K>, last<K>, prune<K>, "
            "zeroshot, majority",
        )
        add_model_options(bt)
        add_train_options(bt)
        add_curriculum_options(bt)
        add_data_options(bt, for_training=True, with_task=False)
        bt.add_argument(
            "--out", required=True, help="folder for the arms, results.json/.md and plots"
        )
        bt.add_argument("--no-progress", action="store_true")
        add_start_options(bt)
        bt.set_defaults(func=cmd_bench_task, task=task_name)
        bench_parsers.append(bt)

    bs = bench_sub.add_parser("speed", help="time to first token and prefill time per K")
    add_speed_options(bs)
    bs.add_argument("--lengths", default="512,2048", help="prompt lengths in tokens")
    bs.add_argument("--batch-sizes", default="1")
    bs.add_argument(
        "--merger-context",
        type=non_negative_int,
        default=0,
        help="tokens before each block the merger also reads (at K > 1; see ktm train)",
    )
    bs.add_argument("--repeats", type=positive_int, default=5)
    bs.add_argument(
        "--decode-steps", type=positive_int, default=16, help="decode steps timed per arm"
    )
    bs.set_defaults(func=cmd_bench_speed)

    bts = bench_sub.add_parser("train-speed", help="training throughput per K (tokens/s)")
    add_speed_options(bts)
    bts.add_argument("--steps", type=positive_int, default=10)
    bts.add_argument("--batch-size", type=positive_int, default=16)
    bts.add_argument("--stage", default="small")
    bts.add_argument("--lora-dropout", type=float, default=0.05)
    bts.set_defaults(func=cmd_bench_train_speed)

    bsv = bench_sub.add_parser(
        "serve", help="load on ktm serve: sequential vs concurrent clients (throughput, errors)"
    )
    bsv.add_argument("checkpoint", nargs="?", default=None, help="a saved model (default: a "
                     "fresh --k model on --model)")  # fmt: skip
    bsv.add_argument("--model", default="smollm2-135m")
    bsv.add_argument("--k", type=positive_int, default=4)
    bsv.add_argument("--requests", type=positive_int, default=64)
    bsv.add_argument("--clients", type=positive_int, default=32)
    bsv.add_argument("--max-tokens", type=positive_int, default=16)
    bsv.add_argument("--max-batch", type=positive_int, default=8)
    bsv.add_argument(
        "--soak-seconds", type=float, default=0.0, help="then a steady load this long (memory)"
    )
    bsv.add_argument("--out", required=True, help="JSON file for the raw results")
    bsv.set_defaults(func=cmd_bench_serve)

    for p in (data, tree, tr, pre, ev, gen, exp, srv, bench, *bench_parsers, bs, bts, bsv):
        p.add_argument("--config", default=None, help="JSON file of option values")
    return parser


# --------------------------------------------------------------------------- commands
