"""The commands that train, evaluate and run models; each returns an exit code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import KTMError


def cmd_data_tree(args: argparse.Namespace) -> int:
    """Generate train/test splits of one tree stage (split by tree)."""
    from ..data_files import write_labeled_jsonl
    from ..io_utils import write_json_atomic
    from ..tasks.tree import generate_split, get_stage

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
    from ..runs import DataConfig

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


def run_config(args: argparse.Namespace):
    from ..config import KTMConfig
    from ..runs import RunConfig
    from ..training import TrainConfig

    return _pick(
        RunConfig,
        args,
        ktm=_pick(KTMConfig, args, lora_lm_head=not args.no_lora_lm_head),
        train=_pick(TrainConfig, args),
        data=_data_config(args),
    )


def int_list(text: str, what: str) -> list[int]:
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
    return [] if text.strip().lower() == "none" else int_list(text, "--k-warmup")


# Options that say how to run, not what: they may differ between a run and its resume.
_HOW_TO_RUN = {"command", "func", "config", "out", "resume", "no_progress"}


def _saved_config(args: argparse.Namespace, cls):
    """``--resume --out RUN`` and nothing else: RUN's saved configuration, else None.

    Any other option given means the user restates the run; it is then checked against the
    saved one as before, so a changed option is still refused.
    """
    if not args.resume:
        return None
    from ..run_files import read_run_config
    from .parser import build_parser

    defaults = vars(build_parser().parse_args([args.command, "--out", args.out]))
    if any(v != defaults.get(k) for k, v in vars(args).items() if k not in _HOW_TO_RUN):
        return None
    if not (Path(args.out) / "config.json").is_file():
        raise KTMError(
            f"nothing to resume in {args.out}: it has no config.json; give the run's options "
            "to start it"
        )
    try:
        return read_run_config(Path(args.out), cls, f"a `ktm {args.command}` run")
    except KTMError as e:
        raise KTMError(f"{e}; give the run's options with --resume") from None


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pre-train merger + LoRA to regenerate text; reuse it with `ktm train --init-from`."""
    from ..config import KTMConfig
    from ..pretrain import PretrainConfig, run_pretraining
    from ..training import TrainConfig

    cfg = _saved_config(args, PretrainConfig) or _pick(
        PretrainConfig,
        args,
        texts=args.text,
        ktm=_pick(KTMConfig, args, lora_lm_head=not args.no_lora_lm_head),
        train=_pick(TrainConfig, args),
        data=_data_config(args) if args.task else None,
        k_warmup=_k_warmup(args.k_warmup),
    )
    result = run_pretraining(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    from ..distributed import process_state

    if process_state().is_main_process:
        print(json.dumps({k: result[k] for k in ("k", "chunks", "steps")} | result["evals"][-1]))
        print(f"ktm: pre-trained merger saved to {Path(args.out) / 'model'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train; writes config.json, checkpoints/, train_log.jsonl, metrics.json and model/."""
    from ..report import format_table, metric_columns
    from ..runs import RunConfig, run_training
    from ..tasks import get_task

    cfg = _saved_config(args, RunConfig) or run_config(args)
    if cfg.pretraining_applies and cfg.pretrain_steps == 0 and not args.resume:
        print(
            "ktm: note: a fresh merger learns slowly at K > 1; without --pretrain-steps 0 the "
            "run pre-trains it first (docs/training.md)",
            file=sys.stderr,
        )
    result = run_training(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    from ..distributed import process_state

    if process_state().is_main_process:
        kind = get_task(cfg.data.task).with_data(cfg.data).kind
        print(format_table([result["test"]], metric_columns(kind)))
        print(f"ktm: model saved to {Path(args.out) / 'model'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint: classification (accuracy, balanced accuracy, F1, majority
    baseline) or generation (perplexity, exact match, edit similarity) metrics."""
    from ..evaluation import evaluate_task
    from ..io_utils import write_json_atomic
    from ..model import KTMModel, checkpoint_folder
    from ..report import format_table, metric_columns
    from ..runs import context_limit, load_stages
    from ..tasks import get_task

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
    from ..model import KTMModel, checkpoint_folder
    from ..sampling import SamplingConfig

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

    from ..export import export_merged

    out = export_merged(args.checkpoint, args.out, dtype=getattr(torch, args.dtype))
    print(f"ktm: exported to {out} (serve it: vllm serve {out} --enable-prompt-embeds)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve /v1/completions, /v1/chat/completions, /v1/models and /health."""
    import torch

    from ..model import KTMModel, checkpoint_folder
    from ..serve.app import ServeConfig, create_app

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
