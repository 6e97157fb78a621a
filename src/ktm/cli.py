"""The `ktm` command: a thin layer over the library.

Every command takes ``--config FILE`` (a JSON object whose keys are the command's option
names); options given on the command line win. Bad usage or input exits with code 2 and a
one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import DTYPES
from .errors import KTMError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"ktm: error: {message}\n")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default="smollm2-135m",
        help="base causal LM: smollm2-135m (bundled), a local folder or a hub id",
    )
    g.add_argument("--k", type=int, default=4, help="tokens merged per embedding (1 = no merging)")
    g.add_argument("--merger", default="mlp", choices=["mlp", "mean"], help="block merger")
    g.add_argument(
        "--merger-init",
        default="mean",
        choices=["mean", "random"],
        help="mean: MLP starts at block mean (zero last layer); random: paper's init",
    )
    g.add_argument(
        "--merger-hidden-factor",
        type=float,
        default=None,
        help="MLP width c in h = int(c*K)*d (default: paper's 2.0 for K<=3, 1.5 above)",
    )
    g.add_argument(
        "--merger-norm",
        default="none",
        choices=["none", "token"],
        help="token: rescale merged embeddings to their tokens' mean norm",
    )
    g.add_argument(
        "--merger-context",
        type=_non_negative_int,
        default=0,
        help="tokens before each block the MLP merger also reads (default 0: the block alone)",
    )
    g.add_argument(
        "--positions",
        default="compact",
        choices=["compact", "spread"],
        help="position ids of the merged prefix: compact 0,1,2,… (paper) or spread: each "
        "block at its last token's position, suffix and answer where they are uncompressed",
    )
    g.add_argument("--lora-r", type=int, default=4, help="LoRA rank (0 disables LoRA)")
    g.add_argument("--lora-alpha", type=float, default=16)
    g.add_argument("--lora-dropout", type=float, default=0.05)
    g.add_argument("--no-lora-lm-head", action="store_true", help="do not adapt the output layer")
    g.add_argument(
        "--reduction",
        default=None,
        choices=["first", "last", "prune"],
        help="token-space baseline instead of merging (with --k 1): keep the first, last or "
        "most informative ceil(T/--reduction-k) prompt tokens",
    )
    g.add_argument(
        "--reduction-k", type=_positive_int, default=1, help="the K whose budget to match"
    )
    g.add_argument(
        "--dtype",
        default="float32",
        choices=DTYPES,
        help="dtype of the frozen base weights (merger and LoRA stay float32)",
    )


def _add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--steps", type=_positive_int, default=300, help="optimizer steps (per stage round set)"
    )
    g.add_argument("--batch-size", type=_positive_int, default=16, help="examples per step")
    g.add_argument("--grad-accum", type=_positive_int, default=1)
    g.add_argument(
        "--lr",
        type=float,
        default=None,
        help="LoRA learning rate (default: 1e-3; 3e-4 for a task run whose merger starts "
        "pre-trained — the recipe)",
    )
    g.add_argument(
        "--merger-lr", type=float, default=None, help="merger learning rate (default: --lr)"
    )
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--warmup-steps", type=int, default=10)
    g.add_argument("--schedule", default="cosine", choices=["constant", "linear", "cosine"])
    g.add_argument("--max-grad-norm", type=float, default=1.0)
    g.add_argument(
        "--eval-every", type=int, default=0, help="evaluate every N steps (0: at the end)"
    )
    g.add_argument("--save-every", type=int, default=50, help="checkpoint every N steps")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--reconstruction-weight",
        type=float,
        default=0.0,
        help="weight of the auxiliary loss that regenerates each prompt from its merged prefix",
    )
    g.add_argument(
        "--distill-weight", type=float, default=1.0, help="weight of distillation from --teacher"
    )
    g.add_argument(
        "--distill-blocks",
        action="store_true",
        help="distil every compressed position too, not only the answer",
    )
    g.add_argument(
        "--reconstruction-max-tokens",
        type=_positive_int,
        default=None,
        help="reconstruct at most this many prompt tokens",
    )


def _add_curriculum_options(p: argparse.ArgumentParser) -> None:
    c = p.add_argument_group("curriculum")
    c.add_argument(
        "--curriculum",
        action="store_true",
        help="train the --stages in order, moving on when a stage passes its threshold",
    )
    c.add_argument(
        "--round-steps", type=_positive_int, default=50, help="steps between stage checks"
    )
    c.add_argument(
        "--max-rounds", type=_positive_int, default=10, help="rounds before giving up a stage"
    )
    c.add_argument("--pass-threshold", type=float, default=0.85, help="metric that passes a stage")
    c.add_argument("--final-threshold", type=float, default=0.95, help="… the last stage")
    c.add_argument(
        "--metric",
        default="balanced_accuracy",
        choices=["balanced_accuracy", "accuracy"],
        help="metric a stage must pass",
    )


def _add_speed_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the speed benchmarks."""
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--k", default="1,4", help="comma-separated K values")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument(
        "--merger-hidden-factor",
        type=float,
        default=None,
        help="MLP width c (default: the paper's)",
    )
    p.add_argument("--out", required=True, help="JSON file for the raw results")


def _add_start_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--teacher",
        default=None,
        help="a trained model (e.g. the K=1 run) to distil from; weight: --distill-weight",
    )
    p.add_argument(
        "--init-from",
        default=None,
        help="start from the merger + LoRA of a saved model (e.g. from `ktm pretrain`)",
    )
    p.add_argument(
        "--pretrain-steps",
        type=_non_negative_int,
        default=None,
        help="reconstruction pre-training steps on the task's training prompts before the task "
        "(default: as many as --steps when K > 1 with the MLP merger and no --init-from; "
        "0 skips it)",
    )
    p.add_argument(
        "--pretrain-chunk-tokens",
        type=_positive_int,
        default=32,
        help="tokens per pre-training chunk",
    )
    p.add_argument(
        "--pretrain-lr", type=float, default=1e-3, help="learning rate of the pre-training phase"
    )
    p.add_argument(
        "--pretrain-k-warmup-steps",
        type=_non_negative_int,
        default=None,
        help="steps of the pre-training phase at each smaller K (2, 4, … below --k) first "
        "(default: a tenth of its steps, at most 40; 0: none)",
    )
    p.add_argument(
        "--pretrain-text",
        action="append",
        default=[],
        help="unlabeled text of the task's kind for the pre-training phase, read after the "
        "task's own prompts: a .txt (paragraphs) or .jsonl file with a 'text' field "
        "(repeatable); worth it when the training split is small",
    )


def _add_data_options(
    p: argparse.ArgumentParser, for_training: bool, with_task: bool = True
) -> None:
    g = p.add_argument_group("data")
    if with_task:
        g.add_argument(
            "--task", default="tree", help="tree, amazon, commitpack or custom (your own file)"
        )
    g.add_argument(
        "--data",
        default=None,
        help="folder with train/test .jsonl or .csv (amazon, commitpack: default "
        "$KTM_DATA_DIR/amazon_reviews, $KTM_DATA_DIR/commitpack)",
    )
    g.add_argument("--train-file", default=None, help="training split file (overrides --data)")
    g.add_argument("--test-file", default=None, help="test split file (overrides --data)")
    g.add_argument("--data-format", default=None, choices=["jsonl", "csv"])
    g.add_argument("--hub", action="store_true", help="read the task's Hugging Face dataset")
    g.add_argument(
        "--category", default=None, help="hub config: Amazon category / CommitPackFT language"
    )
    g.add_argument(
        "--template",
        default=None,
        help="prompt template over record fields, e.g. 'Review: {text}, Label:' (custom)",
    )
    g.add_argument(
        "--suffix-template", default=None, help="uncompressed part after the prompt, e.g. '{q}'"
    )
    g.add_argument("--answer-field", default="answer", help="field with the answer (custom)")
    g.add_argument(
        "--labels",
        default=None,
        help="comma-separated label set: a custom classification task (none: generation)",
    )
    g.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")
    g.add_argument("--max-train", type=_positive_int, default=None, help="training examples")
    g.add_argument("--max-test", type=_positive_int, default=None, help="test examples")
    g.add_argument(
        "--max-prompt-tokens",
        type=_positive_int,
        default=None,
        help="longest prompt in tokens before compression (see --truncation)",
    )
    g.add_argument(
        "--max-answer-tokens",
        type=_positive_int,
        default=None,
        help="drop rows whose answer is longer (answers are never cut)",
    )
    g.add_argument(
        "--truncation",
        default="head",
        choices=["head", "tail", "skip"],
        help="over-long prompt: keep the start of the long field, keep its end, or drop the row",
    )
    g.add_argument("--truncate-field", default=None, help="the field cut to fit")
    g.add_argument(
        "--gen-limit",
        type=int,
        default=32,
        help="generation tasks: test examples scored by greedy generation",
    )
    g.add_argument(
        "--stages",
        default="small",
        help="tree stages to generate when --data is not given, comma-separated",
    )
    g.add_argument("--train-trees", type=_positive_int, default=2000)
    g.add_argument("--test-trees", type=_positive_int, default=100)
    g.add_argument("--data-seed", type=int, default=0)
    g.add_argument(
        "--no-balance", action="store_true", help="keep the natural label skew in training"
    )
    g.add_argument("--balance-test", action="store_true", help="class-balance the test split too")
    g.add_argument(
        "--split-question",
        action="store_true",
        help="compress only the tree; keep the question uncompressed",
    )
    if for_training:
        g.add_argument(
            "--eval-limit",
            type=_positive_int,
            default=None,
            help="test examples used by periodic evaluations",
        )
    g.add_argument("--eval-batch-size", type=_positive_int, default=32)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ktm",
        description="K-Token Merging: train, evaluate and run "
        "latent-space prompt compressors for causal LMs.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"ktm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="make benchmark data")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    tree = data_sub.add_parser("tree", help="generate Textualized Tree train/test splits")
    tree.add_argument("--stage", default="small", help="curriculum stage (small … x3large)")
    tree.add_argument("--train-trees", type=_positive_int, default=2000)
    tree.add_argument("--test-trees", type=_positive_int, default=100)
    tree.add_argument("--seed", type=int, default=0)
    tree.add_argument("--no-balance", action="store_true", help="keep the natural label skew")
    tree.add_argument("--balance-test", action="store_true")
    tree.add_argument("--split-question", action="store_true")
    tree.add_argument("--out", required=True, help="output folder")
    tree.set_defaults(func=cmd_data_tree)

    tr = sub.add_parser("train", help="train a merger + LoRA")
    _add_model_options(tr)
    _add_train_options(tr)
    _add_curriculum_options(tr)
    _add_data_options(tr, for_training=True)
    tr.add_argument("--out", required=True, help="run folder (config, checkpoints, metrics, model)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument("--no-progress", action="store_true")
    _add_start_options(tr)
    tr.set_defaults(func=cmd_train)

    pre = sub.add_parser(
        "pretrain",
        help="task-agnostic merger pre-training: regenerate plain text from merged prefixes",
    )
    _add_model_options(pre)
    _add_train_options(pre)
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
    _add_data_options(pre, for_training=False, with_task=False)
    pre.add_argument("--text-field", default="text", help="JSONL field holding the text")
    pre.add_argument("--chunk-tokens", type=_positive_int, default=64, help="tokens per chunk")
    pre.add_argument("--max-chunks", type=_positive_int, default=20000)
    pre.add_argument(
        "--holdout-chunks",
        type=_positive_int,
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
        type=_non_negative_int,
        default=None,
        help="steps at each warm-up K (default: a tenth of --steps, at most 40; 0 skips it)",
    )
    pre.add_argument("--out", required=True, help="run folder; the merger lands in <out>/model")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--no-progress", action="store_true")
    pre.set_defaults(func=cmd_pretrain)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on a task's test split")
    ev.add_argument("checkpoint", help="a saved model folder, or a run folder (uses <run>/model)")
    _add_data_options(ev, for_training=False)
    ev.add_argument("--split", default="test", choices=["train", "test"])
    ev.add_argument(
        "--limit", type=_positive_int, default=None, help="evaluate the first N examples"
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
    gen.add_argument("--max-new-tokens", type=_positive_int, default=32)
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
    srv.add_argument("--port", type=_positive_int, default=8000)
    srv.add_argument(
        "--api-key", default=None, help="require `Authorization: Bearer KEY` on /v1/ routes"
    )
    srv.add_argument("--model-name", default="ktm", help="the model id clients ask for")
    srv.add_argument(
        "--max-prompt-tokens",
        type=_positive_int,
        default=8192,
        help="longest prompt accepted, in tokens before compression",
    )
    srv.add_argument("--max-batch", type=_positive_int, default=8, help="requests per batch")
    srv.add_argument(
        "--batch-wait-ms", type=float, default=10.0, help="how long a batch waits to fill"
    )
    srv.add_argument("--dtype", default="float32", choices=DTYPES)
    srv.set_defaults(func=cmd_serve)

    bench = sub.add_parser("bench", help="measure: compare arms on a task, or prefill speed")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, parser_class=_Parser)
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
        _add_model_options(bt)
        _add_train_options(bt)
        _add_curriculum_options(bt)
        _add_data_options(bt, for_training=True, with_task=False)
        bt.add_argument(
            "--out", required=True, help="folder for the arms, results.json/.md and plots"
        )
        bt.add_argument("--no-progress", action="store_true")
        _add_start_options(bt)
        bt.set_defaults(func=cmd_bench_task, task=task_name)
        bench_parsers.append(bt)

    bs = bench_sub.add_parser("speed", help="time to first token and prefill time per K")
    _add_speed_options(bs)
    bs.add_argument("--lengths", default="512,2048", help="prompt lengths in tokens")
    bs.add_argument("--batch-sizes", default="1")
    bs.add_argument(
        "--merger-context",
        type=_non_negative_int,
        default=0,
        help="tokens before each block the merger also reads (at K > 1; see ktm train)",
    )
    bs.add_argument("--repeats", type=_positive_int, default=5)
    bs.add_argument(
        "--decode-steps", type=_positive_int, default=16, help="decode steps timed per arm"
    )
    bs.set_defaults(func=cmd_bench_speed)

    bts = bench_sub.add_parser("train-speed", help="training throughput per K (tokens/s)")
    _add_speed_options(bts)
    bts.add_argument("--steps", type=_positive_int, default=10)
    bts.add_argument("--batch-size", type=_positive_int, default=16)
    bts.add_argument("--stage", default="small")
    bts.add_argument("--lora-dropout", type=float, default=0.05)
    bts.set_defaults(func=cmd_bench_train_speed)

    bsv = bench_sub.add_parser(
        "serve", help="load on ktm serve: sequential vs concurrent clients (throughput, errors)"
    )
    bsv.add_argument("checkpoint", nargs="?", default=None, help="a saved model (default: a "
                     "fresh --k model on --model)")  # fmt: skip
    bsv.add_argument("--model", default="smollm2-135m")
    bsv.add_argument("--k", type=_positive_int, default=4)
    bsv.add_argument("--requests", type=_positive_int, default=64)
    bsv.add_argument("--clients", type=_positive_int, default=32)
    bsv.add_argument("--max-tokens", type=_positive_int, default=16)
    bsv.add_argument("--max-batch", type=_positive_int, default=8)
    bsv.add_argument(
        "--soak-seconds", type=float, default=0.0, help="then a steady load this long (memory)"
    )
    bsv.add_argument("--out", required=True, help="JSON file for the raw results")
    bsv.set_defaults(func=cmd_bench_serve)

    for p in (data, tree, tr, pre, ev, gen, exp, srv, bench, *bench_parsers, bs, bts, bsv):
        p.add_argument("--config", default=None, help="JSON file of option values")
    return parser


# --------------------------------------------------------------------------- commands
def cmd_data_tree(args: argparse.Namespace) -> int:
    """Generate train/test splits of one tree stage (split by tree)."""
    from .data_files import write_labeled_jsonl
    from .io_utils import write_json_atomic
    from .tasks.tree import generate_split, get_stage

    stage = get_stage(args.stage)
    out = Path(args.out)
    train = generate_split(
        stage, args.train_trees, args.seed, not args.no_balance, args.split_question
    )
    test = generate_split(
        stage, args.test_trees, args.seed + 1, args.balance_test, args.split_question
    )
    write_labeled_jsonl(out / "train.jsonl", train)
    write_labeled_jsonl(out / "test.jsonl", test)
    info = {
        "task": "tree",
        "stage": stage.name,
        "seed": args.seed,
        "train_trees": args.train_trees,
        "test_trees": args.test_trees,
        "balance": not args.no_balance,
        "balance_test": args.balance_test,
        "split_question": args.split_question,
        "train_examples": len(train),
        "test_examples": len(test),
        "test_share_true": round(sum(r.label == "true" for r in test) / len(test), 4),
    }
    write_json_atomic(out / "meta.json", info)
    print(json.dumps(info))
    return 0


def _pick(cls, args: argparse.Namespace, **overrides):
    """Build dataclass ``cls`` from the options whose names match its fields."""
    import dataclasses

    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    values.update(overrides)
    return cls(**values)


def _data_config(args: argparse.Namespace):
    from .runs import DataConfig

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    labels = [v.strip() for v in args.labels.split(",") if v.strip()] if args.labels else None
    return _pick(
        DataConfig,
        args,
        data_dir=args.data,
        stages=stages,
        balance=not args.no_balance,
        labels=labels,
    )


def _run_config(args: argparse.Namespace):
    from .config import KTMConfig
    from .runs import RunConfig
    from .training import TrainConfig

    return _pick(
        RunConfig,
        args,
        ktm=_pick(KTMConfig, args, lora_lm_head=not args.no_lora_lm_head),
        train=_pick(TrainConfig, args),
        data=_data_config(args),
    )


def cmd_bench_task(args: argparse.Namespace) -> int:
    """Train every arm with the same data, steps and seed; print and save the comparison."""
    from .bench.arms import run_arms

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    run_arms(_run_config(args), arms, args.out, progress=not args.no_progress)
    print((Path(args.out) / "results.md").read_text(), end="")
    return 0


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise KTMError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise KTMError(f"{what} must be integers >= 1, got {text!r}")
    return values


def _k_warmup(text: str | None) -> list[int] | None:
    if text is None:
        return None
    return [] if text.strip().lower() == "none" else _int_list(text, "--k-warmup")


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


def cmd_bench_speed(args: argparse.Namespace) -> int:
    """Time to first token per K and prompt length, side by side; writes JSON."""
    import torch

    from .bench.speed import build_arms, peak_rss_mib, plot_speed, prefill_benchmark
    from .io_utils import write_json_atomic
    from .report import format_table

    ks = _int_list(args.k, "--k")
    arms = build_arms(
        args.model,
        ks,
        dtype=getattr(torch, args.dtype),
        merger_hidden_factor=args.merger_hidden_factor,
        merger_context=args.merger_context,
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
        _int_list(args.lengths, "--lengths"),
        _int_list(args.batch_sizes, "--batch-sizes"),
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


def cmd_bench_train_speed(args: argparse.Namespace) -> int:
    """Training throughput per K on tree batches, steps interleaved; writes JSON."""
    import torch

    from .bench.train_speed import train_speed_benchmark
    from .io_utils import write_json_atomic
    from .report import format_table
    from .tasks.tree import get_stage

    get_stage(args.stage)
    ks = _int_list(args.k, "--k")
    rows = train_speed_benchmark(
        args.model,
        ks,
        args.steps,
        batch_size=args.batch_size,
        stage=args.stage,
        dtype=getattr(torch, args.dtype),
        lora_dropout=args.lora_dropout,
        merger_hidden_factor=args.merger_hidden_factor,
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


def cmd_bench_serve(args: argparse.Namespace) -> int:
    """Throughput of ktm serve, one client vs many, on tree prompts; writes JSON."""
    import random

    import torch

    from .bench.serve_load import serve_load_benchmark
    from .config import KTMConfig
    from .io_utils import write_json_atomic
    from .model import KTMModel, checkpoint_folder
    from .tasks.tree import STAGES, random_tree, tree_prompt

    if args.checkpoint:
        model = KTMModel.from_pretrained(checkpoint_folder(args.checkpoint))
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


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pre-train merger + LoRA to regenerate text; reuse it with `ktm train --init-from`."""
    from .config import KTMConfig
    from .pretrain import PretrainConfig, run_pretraining
    from .training import TrainConfig

    cfg = _pick(
        PretrainConfig,
        args,
        texts=args.text,
        ktm=_pick(KTMConfig, args, lora_lm_head=not args.no_lora_lm_head),
        train=_pick(TrainConfig, args),
        data=_data_config(args) if args.task else None,
        k_warmup=_k_warmup(args.k_warmup),
    )
    result = run_pretraining(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    from .distributed import process_state

    if process_state().is_main_process:
        print(json.dumps({k: result[k] for k in ("k", "chunks", "steps")} | result["evals"][-1]))
        print(f"ktm: pre-trained merger saved to {Path(args.out) / 'model'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train; writes config.json, checkpoints/, train_log.jsonl, metrics.json and model/."""
    from .report import format_table, metric_columns
    from .runs import run_training
    from .tasks import get_task

    cfg = _run_config(args)
    if cfg.pretraining_applies and cfg.pretrain_steps == 0 and not args.resume:
        print(
            "ktm: note: a fresh merger learns slowly at K > 1; without --pretrain-steps 0 the "
            "run pre-trains it first (docs/training.md)",
            file=sys.stderr,
        )
    result = run_training(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    from .distributed import process_state

    if process_state().is_main_process:
        kind = get_task(cfg.data.task).with_data(cfg.data).kind
        print(format_table([result["test"]], metric_columns(kind)))
        print(f"ktm: model saved to {Path(args.out) / 'model'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint: classification (accuracy, balanced accuracy, F1, majority
    baseline) or generation (perplexity, exact match, edit similarity) metrics."""
    from .evaluation import evaluate_task
    from .io_utils import write_json_atomic
    from .model import KTMModel, checkpoint_folder
    from .report import format_table, metric_columns
    from .runs import context_limit, load_stages
    from .tasks import get_task

    data = _data_config(args)
    task = get_task(data.task).with_data(data)
    ckpt = checkpoint_folder(args.checkpoint)
    model = KTMModel.from_pretrained(ckpt)
    stages, data_info = load_stages(data, model.tokenizer, context_limit(model))
    rows = list(stages[-1].test if args.split == "test" else stages[-1].train)
    rows = rows[: args.limit] if args.limit else rows
    metrics = evaluate_task(
        model,
        task,
        rows,
        args.eval_batch_size,
        data.gen_limit,
        data.max_answer_tokens,
        progress=True,
    )
    metrics.update(
        {"checkpoint": str(ckpt), "k": model.k, "split": args.split, "stage": stages[-1].name}
    )
    if data_info:
        metrics["data"] = data_info
    print(format_table([metrics], metric_columns(task.kind)))
    if args.out:
        write_json_atomic(args.out, metrics)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Compress each prompt, generate with a KV cache, print the answers."""
    from .model import KTMModel, checkpoint_folder
    from .sampling import SamplingConfig

    if args.suffix is not None and len(args.suffix) != len(args.prompt):
        raise KTMError(
            f"give one --suffix per --prompt ({len(args.prompt)} prompts, "
            f"{len(args.suffix)} suffixes)"
        )
    sampling = SamplingConfig(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    model = KTMModel.from_pretrained(checkpoint_folder(args.checkpoint))
    batch = model.compress(args.prompt, args.suffix)
    ids = model.generate_ids(batch, sampling)
    texts = model.tokenizer.batch_decode(ids, skip_special_tokens=True)
    for i, text in enumerate(texts):
        if args.json:
            print(
                json.dumps(
                    {
                        "text": text,
                        "tokens_in": batch.tokens_in[i],
                        "tokens_out": batch.tokens_out[i],
                        "new_tokens": len(ids[i]),
                    }
                )
            )
        else:
            print(text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a plain model folder with the LoRA merged (vLLM loads it), and the merger."""
    import torch

    from .export import export_merged

    out = export_merged(args.checkpoint, args.out, dtype=getattr(torch, args.dtype))
    print(f"ktm: exported to {out} (serve it: vllm serve {out} --enable-prompt-embeds)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve /v1/completions, /v1/chat/completions, /v1/models and /health."""
    import torch

    from .model import KTMModel, checkpoint_folder
    from .serve.app import ServeConfig, create_app

    try:
        import uvicorn
    except ImportError:
        raise KTMError("ktm serve needs fastapi and uvicorn: pip install 'ktm[serve]'") from None
    model = KTMModel.from_pretrained(
        checkpoint_folder(args.checkpoint), dtype=getattr(torch, args.dtype)
    )
    cfg = _pick(ServeConfig, args)
    print(f"ktm: serving {args.checkpoint} as {cfg.model_name!r} on http://{args.host}:{args.port}")
    uvicorn.run(create_app(model, cfg), host=args.host, port=args.port, log_level="warning")
    return 0


# --------------------------------------------------------------------------- entry point
def _apply_config_file(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Make the --config file's values the defaults of the chosen (sub)command."""
    if "--config" not in argv:
        return
    i = list(argv).index("--config")
    if i + 1 >= len(argv):
        raise KTMError("--config needs a file name")
    from .io_utils import read_json

    values = read_json(argv[i + 1], "config file")
    if not isinstance(values, dict):
        raise KTMError(f"config file {argv[i + 1]} must hold a JSON object of option values")
    target = parser
    for word in argv[:i]:  # walk down to the subcommand's parser
        actions = [a for a in target._actions if isinstance(a, argparse._SubParsersAction)]
        if actions and word in actions[0].choices:
            target = actions[0].choices[word]
    known = {a.dest for a in target._actions}
    normalized = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(normalized) - known)
    if unknown:
        raise KTMError(f"config file {argv[i + 1]}: unknown option(s) {', '.join(unknown)}")
    target.set_defaults(**normalized)
    for action in target._actions:  # a required option given in the file is satisfied
        if action.dest in normalized:
            action.required = False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        _apply_config_file(parser, argv)
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except KTMError as e:
        print(f"ktm: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ktm: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
