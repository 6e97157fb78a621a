"""The first phase of ``ktm train``'s default recipe at K > 1: reconstruction pre-training of
merger + LoRA on the task's training prompts, as a run of its own in ``<run>/pretrain``
(resumable); the task model then starts from ``<run>/pretrain/model``.

A merger trained on the task loss alone does not learn on a CPU budget; one that first
learns to let the LM regenerate the prompt from its merged prefix does. From a saved merger
(a general one) the phase is short: it starts from that merger and only meets the task's
kind of prompt.
"""

from __future__ import annotations

import dataclasses
import sys

from ..distributed import process_state
from .run_config import RunConfig
from .run_folder import RunFolder

PHASE_FOLDER = "pretrain"


def pretrain_phase_state(cfg: RunConfig, run: RunFolder, resume: bool) -> str | None:
    """Where the phase stands: ``None`` (the run has none, or is past it), ``"done"`` (its
    merger is in ``<run>/pretrain/model``) or ``"to run"``."""
    if cfg.resolved_pretrain_steps == 0:
        return None
    part = run.sub(PHASE_FOLDER, "pretrain")
    if resume and not part.path.exists() and (run.path / "checkpoints").exists():
        return None  # a run past this phase; or written before ktm had it, so it never will
    return "done" if part.finished else "to run"


def pretrain_phase(
    cfg: RunConfig, run: RunFolder, state: str | None, progress: bool
) -> dict | None:
    """Run (or resume) the phase if ``state`` (:func:`pretrain_phase_state`'s) says so.
    Returns what it did: steps, chunks, time and its last held-out evaluation (``None`` when
    the run has no such phase; ``{"skipped": why}`` when the task had too little text)."""
    if state is None:
        return None
    from .pretrain import PretrainConfig, run_pretraining
    from .pretrain_text import NotEnoughText

    steps, part = cfg.resolved_pretrain_steps, run.sub(PHASE_FOLDER, "pretrain")
    ran_seconds = 0.0
    if state == "to run":
        train_cfg = dataclasses.replace(
            cfg.train,
            steps=steps,
            lr=cfg.pretrain_lr,
            merger_lr=None,
            reconstruction_weight=0.0,
            reconstruction_max_tokens=None,
            distill_blocks=False,
            raw_anneal_steps=0,  # the task's curriculum, not the reconstruction's
        )
        pre = PretrainConfig(
            model=cfg.model,
            ktm=cfg.ktm,
            train=train_cfg,
            texts=list(cfg.pretrain_text),
            data=cfg.data,
            chunk_tokens=cfg.pretrain_chunk_tokens,
            dtype=cfg.dtype,
            k_warmup_steps=cfg.pretrain_k_warmup_steps,
            init_from=cfg.start_from,
        )
        if process_state().is_main_process:
            start = f", from {cfg.start_from}" if cfg.start_from else ""
            print(
                f"ktm: pre-training merger + LoRA on the task's prompts for {steps} steps "
                f"first{start} ({part.path}; --pretrain-steps 0 skips)",
                file=sys.stderr,
            )
        t0 = run.seconds_since_start()
        try:
            run_pretraining(pre, part.path, resume=part.started_before, progress=progress)
        except NotEnoughText as e:
            if cfg.pretrain_steps is not None:  # asked for explicitly: an error
                raise
            start = cfg.start_from or "a fresh merger"
            print(f"ktm: note: no pre-training ({e}); the task starts from {start}",
                  file=sys.stderr)  # fmt: skip
            return {"skipped": str(e)}
        ran_seconds = run.seconds_since_start() - t0
    done = part.read_metrics()
    last = done["evals"][-1] if done.get("evals") else {}
    return {
        "steps": done["steps"],
        "chunks": done["chunks"],
        "train_seconds": done["train_seconds"],
        # runs from before 0.1.1 did not record their wall time: their steps' time stands in
        "wall_seconds": done.get("wall_seconds", done["train_seconds"]),
        "ran_seconds": round(ran_seconds, 1),
        **last,
    }
