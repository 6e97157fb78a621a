"""Argument types and the option groups the commands share."""

from __future__ import annotations

import argparse

from ..config import DTYPES

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"ktm: error: {message}\n")


def int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    return int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return int_at_least(text, 0)


def add_model_options(p: argparse.ArgumentParser) -> None:
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
        type=non_negative_int,
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
        "--reduction-k", type=positive_int, default=1, help="the K whose budget to match"
    )
    g.add_argument(
        "--dtype",
        default="float32",
        choices=DTYPES,
        help="dtype of the frozen base weights (merger and LoRA stay float32)",
    )


def add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--steps", type=positive_int, default=300, help="optimizer steps (per stage round set)"
    )
    g.add_argument("--batch-size", type=positive_int, default=16, help="examples per step")
    g.add_argument("--grad-accum", type=positive_int, default=1)
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
        type=positive_int,
        default=None,
        help="reconstruct at most this many prompt tokens",
    )


def add_curriculum_options(p: argparse.ArgumentParser) -> None:
    c = p.add_argument_group("curriculum")
    c.add_argument(
        "--curriculum",
        action="store_true",
        help="train the --stages in order, moving on when a stage passes its threshold",
    )
    c.add_argument(
        "--round-steps", type=positive_int, default=50, help="steps between stage checks"
    )
    c.add_argument(
        "--max-rounds", type=positive_int, default=10, help="rounds before giving up a stage"
    )
    c.add_argument("--pass-threshold", type=float, default=0.85, help="metric that passes a stage")
    c.add_argument("--final-threshold", type=float, default=0.95, help="… the last stage")
    c.add_argument(
        "--metric",
        default="balanced_accuracy",
        choices=["balanced_accuracy", "accuracy"],
        help="metric a stage must pass",
    )


def add_speed_options(p: argparse.ArgumentParser) -> None:
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


def add_start_options(p: argparse.ArgumentParser) -> None:
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
        "--init-lora-from",
        default=None,
        help="then take the LoRA alone from this saved model or checkpoint, whatever its K "
        "(e.g. a task run at a smaller K: a curriculum over K)",
    )
    p.add_argument(
        "--pretrain-steps",
        type=non_negative_int,
        default=None,
        help="reconstruction pre-training steps on the task's training prompts before the task "
        "(default: as many as --steps when K > 1 with the MLP merger and no --init-from; "
        "0 skips it)",
    )
    p.add_argument(
        "--pretrain-chunk-tokens",
        type=positive_int,
        default=32,
        help="tokens per pre-training chunk",
    )
    p.add_argument(
        "--pretrain-lr", type=float, default=1e-3, help="learning rate of the pre-training phase"
    )
    p.add_argument(
        "--pretrain-k-warmup-steps",
        type=non_negative_int,
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


def add_data_options(
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
    g.add_argument("--max-train", type=positive_int, default=None, help="training examples")
    g.add_argument("--max-test", type=positive_int, default=None, help="test examples")
    g.add_argument(
        "--max-prompt-tokens",
        type=positive_int,
        default=None,
        help="longest prompt in tokens before compression (see --truncation)",
    )
    g.add_argument(
        "--max-answer-tokens",
        type=positive_int,
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
    g.add_argument("--train-trees", type=positive_int, default=2000)
    g.add_argument("--test-trees", type=positive_int, default=100)
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
            type=positive_int,
            default=None,
            help="test examples used by periodic evaluations",
        )
    g.add_argument("--eval-batch-size", type=positive_int, default=32)
