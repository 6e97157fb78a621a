"""``ktm train``: a training run end to end — data, model, the pre-training phase, training
(plain or curriculum), final evaluation.

Everything a run used is written to ``<out>/config.json`` before it starts, and its final
metrics to ``<out>/metrics.json`` (with the time of each phase and the total);
``resume`` continues an interrupted run in place.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from ..distributed import process_state
from ..errors import KTMError
from ..model import KTMModel
from ..tasks import get_task
from ..training import train
from .baselines import reduce_stages
from .curriculum import run_curriculum
from .data import context_limit, first_n, load_stages
from .evaluate import evaluate_task
from .pretrain_phase import pretrain_phase, pretrain_phase_state
from .run_config import RunConfig
from .run_folder import RunFolder
from .start import init_from, load_teacher, say_start

__all__ = ["RunConfig", "run_training"]


def _build_models(cfg: RunConfig) -> tuple[KTMModel, KTMModel | None]:
    """The run's model (seeded LoRA and merger initialisation, then ``init_from``, then the
    LoRA of ``init_lora_from``) and its distillation teacher, if any."""
    import torch

    dtype = getattr(torch, cfg.dtype)
    torch.manual_seed(cfg.train.seed)
    model = KTMModel.from_base(cfg.model, cfg.ktm, dtype=dtype)
    if cfg.start_from:
        init_from(model, cfg.start_from)
    if cfg.init_lora_from:  # e.g. a task run at a smaller K: its LoRA, over init_from's
        init_from(model, cfg.init_lora_from, lora_only=True)
    return model, load_teacher(cfg.teacher, model, dtype) if cfg.teacher else None


def run_training(
    cfg: RunConfig, output_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict:
    """Train as ``cfg`` says, evaluate on the (last reached) test split, write metrics."""
    run = RunFolder(output_dir, "train")
    out = run.path
    cfg = cfg.resolved()
    task = get_task(cfg.data.task).with_data(cfg.data)
    if cfg.curriculum and task.kind != "classification":
        raise KTMError("curriculum training needs a classification task")
    run.check(cfg, resume)
    # Build the model and read the data before writing anything: bad input leaves no folder.
    model, teacher = _build_models(cfg)
    if process_state().is_main_process and not resume:
        say_start(cfg)  # after the model loaded: a bad --model is the one error shown
    budget_k = cfg.reduction_k if cfg.reduction else None
    stages, data_info = load_stages(cfg.data, model.tokenizer, context_limit(model, budget_k))
    if len(stages) > 1 and not cfg.curriculum:
        raise KTMError("several stages need curriculum training (--curriculum)")
    if cfg.pretrain_text:
        from .pretrain_text import read_texts

        read_texts(cfg.pretrain_text)  # a missing or unreadable file fails here, not mid-run
    if cfg.reduction:  # a token-budget baseline: the model reads the kept tokens only
        stages = reduce_stages(model, stages, cfg.reduction, cfg.reduction_k)
    state = run.start(cfg, resume)
    phase = pretrain_phase_state(cfg, run, resume)
    if phase == "to run":  # the phase builds its own model: hold one base model at a time
        del model, teacher
        gc.collect()
    pretrain_info = pretrain_phase(cfg, run, phase, progress)
    phase_seconds = pretrain_info.pop("ran_seconds", 0.0) if pretrain_info else 0.0
    if phase == "to run":
        model, teacher = _build_models(cfg)  # the same initialisation as the first build
    if pretrain_info and "skipped" not in pretrain_info:
        init_from(model, out / "pretrain" / "model")
    if cfg.ktm.token_scorer in ("auto", "idf") and cfg.ktm.k > 1:  # on the task's prompts
        model.fit_token_idf([e.model_prompt for stage in stages for e in stage.train])
    cfg.train.progress = progress
    setup_seconds = run.seconds_since_start() - phase_seconds
    if cfg.curriculum:
        summaries = run_curriculum(
            model,
            task,
            stages,
            cfg.train,
            out,
            cfg.round_steps,
            cfg.max_rounds,
            cfg.metric,
            cfg.eval_batch_size,
            resume,
            teacher=teacher,
        )
        reached = stages[len(summaries) - 1]
        if state.is_main_process:
            model.save_pretrained(out / "model")
        train_info = {"stages": summaries}
        step_seconds = sum(st["seconds"] for st in summaries)
        train_wall = sum(st.get("wall_seconds", st["seconds"]) for st in summaries)
    else:
        reached = stages[0]
        eval_rows = first_n(list(reached.test), cfg.data.eval_limit)

        def evaluate(m: KTMModel) -> dict:
            return evaluate_task(m, task, eval_rows, cfg.eval_batch_size, cfg.data.gen_limit,
                                 cfg.data.max_answer_tokens)  # fmt: skip

        result = train(
            model,
            [e.to_example() for e in reached.train],
            cfg.train,
            out,
            evaluate=evaluate,
            resume=resume,
            teacher=teacher,
        )
        step_seconds = sum(r["seconds"] for r in result.history)
        train_wall = result.wall_seconds
        train_info = {
            "steps": result.steps_done,
            "processes": result.processes,
            "evals": result.evals,
        }
    t_eval = time.perf_counter()
    metrics = evaluate_task(
        model,
        task,
        list(reached.test),
        cfg.eval_batch_size,
        cfg.data.gen_limit,
        cfg.data.max_answer_tokens,
    )
    eval_seconds = time.perf_counter() - t_eval
    pretrain_seconds = (pretrain_info or {}).get("wall_seconds", 0.0)
    seconds = {
        "pretrain": round(pretrain_seconds, 1),  # the built-in pre-training phase, warm-ups in
        "setup": round(setup_seconds, 1),  # this invocation: loading model and data
        "train": round(train_wall, 1),  # task training: steps, periodic evals, checkpoints
        "final_eval": round(eval_seconds, 1),
    }
    summary = {
        "model": cfg.model,
        "k": cfg.ktm.k,
        "merger": cfg.ktm.merger,
        "stage": reached.name,
        "train_examples": len(reached.train),
        "test_examples": len(reached.test),
        "train_seconds": round(step_seconds, 1),  # optimizer steps only, over all resumes
        "wall_seconds": round(sum(seconds.values()), 1),  # everything, pre-training included
        "seconds": seconds,
        "test": metrics,
        **({"pretrain": pretrain_info} if pretrain_info else {}),
        **({"data": data_info} if data_info else {}),
        **train_info,
    }
    return run.finish(summary)
