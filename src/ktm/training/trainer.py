"""The training loop: Accelerate, gradient accumulation, schedule, eval, checkpoints, resume."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..distributed import make_accelerator
from ..errors import KTMError
from ..io_utils import write_json_atomic
from .checkpoint import clean_partial, list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Example, SampleOrder
from .protocol import TrainableModel
from .step_log import LOG_NAME, StepLog

Evaluate = Callable[[TrainableModel], dict]
_SHOWN_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "majority_baseline",
    "perplexity",
    "exact_match",
    "edit_similarity",
    "reconstruction_nll",
)
StopRule = Callable[[dict], bool]


@dataclass
class TrainResult:
    """What a run produced: per-step log, evaluations, and why it ended."""

    steps_done: int
    history: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0  # this invocation
    wall_seconds: float = 0.0  # every invocation of the run: steps, evaluations, checkpoints
    processes: int = 1


@dataclass
class _Tokenized:
    prompt: list[list[int]]
    suffix: list[list[int]]
    answer: list[list[int]]

    def select(self, idx: Sequence[int]) -> tuple[list, list, list]:
        return (
            [self.prompt[i] for i in idx],
            [self.answer[i] for i in idx],
            [self.suffix[i] for i in idx],
        )


def tokenize_examples(model: TrainableModel, examples: Sequence[Example]) -> _Tokenized:
    if not examples:
        raise KTMError("no training examples")
    has_suffix = any(e.suffix for e in examples)
    prompts, suffixes = model.encode_prompts(
        [e.model_prompt for e in examples],
        [e.suffix or "" for e in examples] if has_suffix else None,
    )
    return _Tokenized(prompts, suffixes, model.encode_answers([e.answer for e in examples]))


def train(
    model: TrainableModel,
    examples: Sequence[Example],
    config: TrainConfig,
    output_dir: str | Path,
    evaluate: Evaluate | None = None,
    should_stop: StopRule | None = None,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    teacher: TrainableModel | None = None,
) -> TrainResult:
    """Train ``model`` on ``examples``; checkpoints and logs go to ``output_dir``.

    Runs unchanged on one process or under ``accelerate launch``. With ``resume``, the newest
    complete checkpoint in ``output_dir/checkpoints`` is restored and the run continues with
    exactly the batches and dropout masks it would have had.

    ``evaluate(model) -> metrics`` runs every ``config.eval_every`` steps and at the end (on
    every process; shard inside it); ``should_stop(metrics)`` ends the run early.
    ``teacher`` (frozen, e.g. a trained K = 1 model on the same base) adds distillation,
    weighted by ``config.distill_weight``.
    """
    out = Path(output_dir)
    ckpt_dir = out / "checkpoints"
    accelerator = make_accelerator()
    world, rank = accelerator.num_processes, accelerator.process_index
    micro = config.batch_size // config.grad_accum
    if micro % world:
        raise KTMError(
            f"batch_size/grad_accum = {micro} examples per micro-batch cannot be split over "
            f"{world} processes; choose a multiple of {world}"
        )

    if not any(p.requires_grad for p in model.parameters()):
        raise KTMError(
            "the model has nothing to train; build it with KTMModel.from_base or load it with "
            "KTMModel.from_pretrained(path, trainable=True)"
        )
    data = tokenize_examples(model, examples)
    order = SampleOrder(len(examples), config.seed)
    lora = [
        p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("merger.")
    ]
    merger = [p for p in model.merger.parameters() if p.requires_grad]
    lr = config.base_lr
    groups = [{"params": lora, "lr": lr, "base_lr": lr}]
    if merger:
        mlr = config.merger_lr or lr
        groups.append({"params": merger, "lr": mlr, "base_lr": mlr})
    optimizer = make_optimizer(groups, config.weight_decay)

    start, result, earlier = 0, TrainResult(0), 0.0
    t0 = time.perf_counter()
    if resume:
        clean_partial(ckpt_dir)  # a killed run's half-written checkpoint is never resumed
        found = list_checkpoints(ckpt_dir)
        if found:
            state = load_checkpoint(found[-1], model, optimizer)
            start = state["step"]
            result.history, result.evals = state["history"], state["evals"]
            earlier = state.get("wall_seconds", 0.0)  # absent in checkpoints before 0.1.1
            accelerator.print(f"ktm: resuming from {found[-1]} (step {start})")
    elif list_checkpoints(ckpt_dir):
        raise KTMError(
            f"{out} already holds a run; pass --resume to continue it or pick a new folder"
        )

    wrapped, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    log = StepLog(out / LOG_NAME, config.steps, accelerator.is_main_process, not config.progress)
    log.restart(result.history)  # steps after the restored checkpoint are run again
    bar = None
    if config.progress and accelerator.is_main_process:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)

    def checkpoint(step: int) -> None:
        if accelerator.is_main_process:
            save_checkpoint(
                ckpt_dir,
                step,
                accelerator.unwrap_model(wrapped),
                optimizer,
                {
                    "history": result.history,
                    "evals": result.evals,
                    "wall_seconds": round(earlier + time.perf_counter() - t0, 1),
                },
                config.keep_checkpoints,
            )
            _write_logs(out, result)
        accelerator.wait_for_everyone()

    def run_eval(step: int) -> bool:
        if evaluate is None:
            return False
        metrics = {"step": step, **evaluate(accelerator.unwrap_model(wrapped))}
        result.evals.append(metrics)
        shown = {k: round(v, 4) for k, v in metrics.items() if k in _SHOWN_METRICS}
        accelerator.print(f"ktm: eval at step {step}: {json.dumps(shown)}")
        model.train()
        return bool(should_stop and should_stop(metrics))

    with model.training_attention():  # the fastest kernel for training here
        step = start
        stop = bool(result.evals and should_stop and should_stop(result.evals[-1]))
        while step < config.steps and not stop:
            # Dropout masks depend only on (seed, step, rank): resume replays them exactly.
            torch.manual_seed(config.seed * 1_000_003 + step * world + rank)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * config.lr_factor(step)
            batch = order.take(step * config.batch_size, config.batch_size)
            n_answer = sum(len(data.answer[i]) for i in batch)
            recon = config.reconstruction_weight > 0
            cap = config.reconstruction_max_tokens
            n_recon = sum(len(data.prompt[i][:cap] if cap else data.prompt[i]) for i in batch)
            # Each loss is a mean over the global batch's tokens; DDP averages gradients over
            # processes, so scale by the world size.
            weights = torch.tensor(
                [
                    world / n_answer,
                    world * config.reconstruction_weight / max(1, n_recon),
                    world * config.distill_weight / n_answer,
                ],
                device=accelerator.device,
            )
            raw_share = config.raw_share(step, model.config.budget or 1 / model.k)
            t_step = time.perf_counter()
            loss_sum = torch.zeros(3, device=accelerator.device)
            for m in range(config.grad_accum):
                local = batch[m * micro : (m + 1) * micro][rank::world]
                prompts, answers, suffixes = data.select(local)
                ctx = accelerator.no_sync(wrapped) if m < config.grad_accum - 1 else _null()
                with ctx:
                    summed = wrapped(
                        prompts,
                        answers,
                        suffixes,
                        recon,
                        cap,
                        teacher,
                        config.distill_blocks,
                        raw_share,
                    )
                    accelerator.backward((summed * weights).sum())
                loss_sum += summed.detach()
            task_sum, recon_sum, distill_sum = accelerator.reduce(loss_sum, "sum").tolist()
            loss = task_sum / n_answer
            if not all(map(math.isfinite, (task_sum, recon_sum, distill_sum))):
                # Before the update: the weights and the last checkpoint stay clean.
                shown = ", ".join(map(str, batch[:8])) + (" …" if len(batch) > 8 else "")
                raise KTMError(
                    f"loss became {loss} at step {step + 1} (examples {shown} of the training "
                    f"set); nothing of this step was applied or saved — lower the learning rate "
                    f"or check those examples, then --resume"
                )
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(
                    [p for g in groups for p in g["params"]], config.max_grad_norm
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - t_step
            tokens = sum(len(data.prompt[i]) + len(data.suffix[i]) for i in batch)
            step += 1
            record = {
                "step": step,
                "loss": round(loss, 6),
                **({"reconstruction_loss": round(recon_sum / n_recon, 6)} if recon else {}),
                **({"distill_loss": round(distill_sum / n_answer, 6)} if teacher else {}),
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(seconds, 4),
                "prompt_tokens_per_s": round(tokens / seconds, 1),
            }
            result.history.append(record)
            log.add(record)
            if on_step:
                on_step(record)
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens / seconds:.0f}")
            if config.eval_every and step % config.eval_every == 0:
                stop = run_eval(step)
            if (
                config.save_every
                and step % config.save_every == 0
                and step < config.steps
                and not stop
            ):
                checkpoint(step)
    if bar:
        bar.close()
    if evaluate is not None and (not result.evals or result.evals[-1]["step"] != step):
        run_eval(step)
    checkpoint(step)
    result.steps_done, result.stopped_early = step, step < config.steps
    result.processes = world
    result.seconds = time.perf_counter() - t0
    result.wall_seconds = round(earlier + result.seconds, 1)
    if accelerator.is_main_process:
        accelerator.unwrap_model(wrapped).save_pretrained(out / "model")
    accelerator.wait_for_everyone()
    return result


def make_optimizer(groups: list[dict], weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused where torch supports it (about 8x faster steps on CPU for the merger)."""
    try:
        return torch.optim.AdamW(groups, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, weight_decay=weight_decay)


def _write_logs(out: Path, result: TrainResult) -> None:
    # train_log.jsonl is appended step by step (StepLog) and rewritten at resume
    write_json_atomic(out / "evals.json", result.evals)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
