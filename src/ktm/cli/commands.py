"""The commands that make data, train, evaluate and run models. Each gets the option values
the user gave (field name → value; defaults stay in the config dataclasses) and returns an
exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import KTMError
from .generate import build
from .specs import (
    EvalOptions,
    ExportOptions,
    GenerateOptions,
    HubDataOptions,
    RunPlace,
    ServeOptions,
    TreeDataOptions,
)

# Options that say how to run, not what: they may differ between a run and its resume.
HOW_TO_RUN = {"out", "resume", "progress"}


def run_config(cls: type, command: str, values: dict):
    """The run's config: built from ``values``, or — for ``--resume --out RUN`` and nothing
    else — read back from RUN (a changed option given with ``--resume`` is refused later, when
    the run compares it with the saved one)."""
    from ..recipes.run_folder import OtherCommandRun, RunFolder

    if not (values.get("resume") and set(values) <= HOW_TO_RUN):
        return build(cls, values)
    run = RunFolder(values["out"], command)
    if not run.started_before:
        raise KTMError(
            f"nothing to resume in {run.path}: it has no config.json; give the run's options "
            "to start it"
        )
    try:
        return run.read_config(cls)
    except OtherCommandRun:
        raise
    except KTMError as e:
        raise KTMError(f"{e}; give the run's options with --resume") from None


def data_tree(values: dict) -> int:
    """Generate train/test splits of one tree stage (split by tree)."""
    from ..io_utils import write_json_atomic
    from ..tasks.data_files import write_labeled_jsonl
    from ..tasks.tree import generate_split, get_stage

    o = build(TreeDataOptions, values)
    stage = get_stage(o.stage)
    train = generate_split(stage, o.train_trees, o.seed, o.balance, o.split_question)
    test = generate_split(stage, o.test_trees, o.seed + 1, o.balance_test, o.split_question)
    out = Path(o.out)
    write_labeled_jsonl(out / "train.jsonl", train)
    write_labeled_jsonl(out / "test.jsonl", test)
    info = {
        "task": "tree",
        **{k: v for k, v in vars(o).items() if k != "out"},
        "train_examples": len(train),
        "test_examples": len(test),
        "test_share_true": round(sum(r.label == "true" for r in test) / len(test), 4),
    }
    write_json_atomic(out / "meta.json", info)
    print(json.dumps(info))
    return 0


def data_hub(task: str) -> Callable[[dict], int]:
    """``ktm data amazon|commitpack``: the paper's dataset, read from the Hugging Face hub
    (``pip install "ktm[hub]"``), written as local train/test JSONL."""

    def fetch(values: dict) -> int:
        from ..tasks.hub_download import download_task_data

        o = build(HubDataOptions, values)
        info = download_task_data(task, o.out, o.category)
        print(json.dumps(info))
        return 0

    return fetch


def train(values: dict) -> int:
    """Train; writes config.json, checkpoints/, train_log.jsonl, metrics.json and model/."""
    from ..recipes.report import format_table, metric_columns
    from ..recipes.run_config import RunConfig
    from ..recipes.train import run_training
    from ..tasks import get_task

    place = build(RunPlace, values)
    cfg = run_config(RunConfig, "train", values)
    if (
        cfg.pretraining_applies
        and not cfg.start_from
        and cfg.pretrain_steps == 0
        and not place.resume
    ):
        print(
            "ktm: note: a fresh merger learns slowly at K > 1; without --pretrain-steps 0 the "
            "run pre-trains it first (docs/training.md)",
            file=sys.stderr,
        )
    result = run_training(cfg, place.out, resume=place.resume, progress=place.progress)
    from ..distributed import process_state

    if process_state().is_main_process:
        kind = get_task(cfg.data.task).with_data(cfg.data).kind
        print(format_table([result["test"]], metric_columns(kind)))
        print(f"ktm: model saved to {Path(place.out) / 'model'}")
    return 0


def pretrain(values: dict) -> int:
    """Pre-train merger + LoRA to regenerate text; reuse it with `ktm train --init-from`."""
    from ..recipes.pretrain import PretrainConfig, run_pretraining

    place = build(RunPlace, values)
    cfg = run_config(PretrainConfig, "pretrain", values)
    result = run_pretraining(cfg, place.out, resume=place.resume, progress=place.progress)
    from ..distributed import process_state

    if process_state().is_main_process:
        print(json.dumps({k: result[k] for k in ("k", "chunks", "steps")} | result["evals"][-1]))
        print(f"ktm: pre-trained merger saved to {Path(place.out) / 'model'}")
    return 0


def evaluate(values: dict) -> int:
    """Evaluate a saved model: classification (accuracy, balanced accuracy, F1, majority
    baseline) or generation (perplexity, exact match, edit similarity) metrics."""
    from ..recipes.data import DataConfig
    from ..recipes.evaluate import evaluate_checkpoint
    from ..recipes.report import format_table, metric_columns

    o, data = build(EvalOptions, values), build(DataConfig, values)
    metrics, kind = evaluate_checkpoint(
        o.checkpoint, data, o.split, o.limit, o.eval_batch_size, o.base_model
    )
    print(format_table([metrics], metric_columns(kind)))
    if o.out:
        from ..io_utils import write_json_atomic

        write_json_atomic(o.out, metrics)
    return 0


def generate(values: dict) -> int:
    """Compress each prompt, generate with a KV cache, print the answers."""
    from ..model import KTMModel
    from ..recipes.start import model_folder
    from ..sampling import SamplingConfig

    o, sampling = build(GenerateOptions, values), build(SamplingConfig, values)
    if o.suffix is not None and len(o.suffix) != len(o.prompt):
        raise KTMError(
            f"give one --suffix per --prompt ({len(o.prompt)} prompts, {len(o.suffix)} suffixes)"
        )
    model = KTMModel.from_pretrained(model_folder(o.checkpoint), base_model=o.base_model)
    batch = model.compress(o.prompt, o.suffix, o.budget, o.budget_positions)
    ids = model.generate_ids(batch, sampling)
    texts = model.tokenizer.batch_decode(ids, skip_special_tokens=True)
    for i, text in enumerate(texts):
        if o.json:
            row = {"text": text, "tokens_in": batch.tokens_in[i],
                   "tokens_out": batch.tokens_out[i], "kept": batch.kept[i],
                   "new_tokens": len(ids[i])}  # fmt: skip
            print(json.dumps(row))
        else:
            print(text)
    return 0


def export(values: dict) -> int:
    """Write a plain model folder with the LoRA merged (vLLM loads it), and the merger."""
    import torch

    from ..recipes.export import export_merged

    o = build(ExportOptions, values)
    out = export_merged(o.checkpoint, o.out, dtype=getattr(torch, o.dtype), base_model=o.base_model)
    print(f"ktm: exported to {out} (serve it: vllm serve {out} --enable-prompt-embeds)")
    return 0


def serve(values: dict) -> int:
    """Serve /v1/completions, /v1/chat/completions, /v1/models and /health."""
    import torch

    from ..model import KTMModel
    from ..recipes.serve.config import ServeConfig
    from ..recipes.start import model_folder

    try:
        import uvicorn

        from ..recipes.serve.app import create_app
    except ImportError:
        raise KTMError("ktm serve needs fastapi and uvicorn: pip install 'ktm[serve]'") from None
    o, cfg = build(ServeOptions, values), build(ServeConfig, values)
    model = KTMModel.from_pretrained(
        model_folder(o.checkpoint), base_model=o.base_model, dtype=getattr(torch, o.dtype)
    )
    print(f"ktm: serving {o.checkpoint} as {cfg.model_name!r} on http://{o.host}:{o.port}")
    uvicorn.run(create_app(model, cfg), host=o.host, port=o.port, log_level="warning")
    return 0
