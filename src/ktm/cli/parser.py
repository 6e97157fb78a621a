"""The `ktm` argument parser, generated from the command table: each command's options are the
fields of its config dataclasses (:mod:`ktm.cli.generate`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"ktm: error: {message}\n")


@dataclass(frozen=True)
class Command:
    """One `ktm` (sub)command: its words, help, the dataclasses its options come from, and
    the function that runs it (it gets the given option values, field name → value)."""

    words: tuple[str, ...]
    help: str
    configs: tuple[type, ...]
    run: Callable[[dict], int]


def commands() -> list[Command]:
    """Every command, in the order ``ktm --help`` lists them."""
    from ..recipes.data import DataConfig
    from ..recipes.pretrain import PretrainConfig
    from ..recipes.run_config import RunConfig
    from ..recipes.serve.config import ServeConfig
    from ..sampling import SamplingConfig
    from .bench import serve_load, speed, task_bench, train_speed
    from .commands import data_hub, data_tree, evaluate, export, generate, pretrain, serve, train
    from .specs import (
        BenchArms,
        EvalOptions,
        ExportOptions,
        GenerateOptions,
        HubDataOptions,
        PrefillBenchOptions,
        RunPlace,
        ServeBenchOptions,
        ServeOptions,
        TrainSpeedOptions,
        TreeDataOptions,
    )

    tasks = (
        ("tree", "Textualized Tree"),
        ("amazon", "Amazon Reviews sentiment"),
        ("commitpack", "CommitPackFT code edits"),
        ("custom", "your own data (--train-file/--test-file, --template, --answer-field)"),
    )
    return [
        Command(("data", "tree"), "generate Textualized Tree train/test splits",
                (TreeDataOptions,), data_tree),
        Command(("data", "amazon"), "fetch Amazon Reviews 2023 from the Hugging Face hub "
                "into a local folder", (HubDataOptions,), data_hub("amazon")),
        Command(("data", "commitpack"), "fetch CommitPackFT from the Hugging Face hub into a "
                "local folder", (HubDataOptions,), data_hub("commitpack")),
        Command(("train",), "train a merger + LoRA on a task", (RunConfig, RunPlace),
                train),
        Command(("pretrain",), "task-agnostic merger pre-training: regenerate text from "
                "merged prefixes", (PretrainConfig, RunPlace), pretrain),
        Command(("eval",), "evaluate a saved model on a task's test split",
                (EvalOptions, DataConfig), evaluate),
        Command(("generate",), "compress prompts and generate answers",
                (GenerateOptions, SamplingConfig), generate),
        Command(("export",), "export for vLLM: LoRA merged into the base, merger beside it",
                (ExportOptions,), export),
        Command(("serve",), "OpenAI-compatible HTTP server for a ktm model",
                (ServeOptions, ServeConfig), serve),
        *(
            Command(("bench", name), f"train and compare arms (K values, baselines) on {about}",
                    (RunConfig, BenchArms), task_bench(name))
            for name, about in tasks
        ),
        Command(("bench", "speed"), "time to first token and prefill time per K",
                (PrefillBenchOptions,), speed),
        Command(("bench", "train-speed"), "training throughput per K (tokens/s)",
                (TrainSpeedOptions,), train_speed),
        Command(("bench", "serve"), "load on ktm serve: one client vs many (throughput, memory)",
                (ServeBenchOptions,), serve_load),
    ]  # fmt: skip


def build_parser() -> Parser:
    """The parser of every command; a parsed namespace has ``command`` (a :class:`Command`)
    and the options given (no defaults: those stay in the dataclasses)."""
    from .. import __version__
    from .generate import add_options

    parser = Parser(
        prog="ktm",
        description="K-Token Merging: train, evaluate and run latent-space prompt compressors "
        "for causal LMs.",
    )
    parser.add_argument("--version", action="version", version=f"ktm {__version__}")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="_word0", required=True, parser_class=Parser)
    }
    for cmd in commands():
        for depth in range(1, len(cmd.words)):  # the group words ("data", "bench")
            prefix = cmd.words[:depth]
            if prefix not in groups:
                group = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                groups[prefix] = group.add_subparsers(
                    dest=f"_word{depth}", required=True, parser_class=Parser
                )
        sub = groups[cmd.words[:-1]].add_parser(cmd.words[-1], help=cmd.help,
                                                description=cmd.help)  # fmt: skip
        for cls in cmd.configs:
            add_options(sub, cls, title=_title(cls))
        sub.add_argument("--config", default=argparse.SUPPRESS,
                         help="JSON file of option values (the command line wins)")  # fmt: skip
        sub.set_defaults(command=cmd)
    return parser


def _title(cls: type) -> str:
    return cls.__name__.replace("Config", "").replace("Options", "").lower()
