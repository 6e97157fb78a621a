"""Curriculum training: move to the next stage once the current one passes its threshold."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .distributed import process_state
from .errors import KTMError
from .evaluation import evaluate_classification
from .io_utils import read_json, write_json_atomic
from .model import KTMModel
from .tasks.base import ClassificationTask, LabeledExample
from .training import TrainConfig, train
from .training.checkpoint import list_checkpoints, load_trainable

STATE_NAME = "curriculum.json"


@dataclass
class Stage:
    """One curriculum stage: its data and the metric value that passes it."""

    name: str
    train: Sequence[LabeledExample]
    test: Sequence[LabeledExample]
    threshold: float


def run_curriculum(
    model: KTMModel,
    task: ClassificationTask,
    stages: Sequence[Stage],
    config: TrainConfig,
    output_dir: str | Path,
    round_steps: int,
    max_rounds: int,
    metric: str = "balanced_accuracy",
    eval_batch_size: int = 32,
    resume: bool = False,
    log: Callable[[str], None] = print,
    teacher: KTMModel | None = None,
) -> list[dict]:
    """Train stage after stage. Each stage trains in rounds of ``round_steps`` steps and is
    evaluated after each round; it ends when ``metric`` ≥ its threshold or after
    ``max_rounds`` rounds (then the curriculum stops there). Resumable: finished stages are
    skipped (their weights restored), the current one resumes from its checkpoint.

    Returns one summary per stage run.
    """
    if round_steps < 1 or max_rounds < 1:
        raise KTMError("round_steps and max_rounds must be >= 1")
    out = Path(output_dir)
    state_file = out / STATE_NAME
    summaries: list[dict] = (
        read_json(state_file, "curriculum state") if (resume and state_file.is_file()) else []
    )
    done = {s["stage"] for s in summaries}
    for i, stage in enumerate(stages):
        stage_dir = out / f"stage-{i}-{stage.name}"
        if stage.name in done:
            load_trainable(list_checkpoints(stage_dir / "checkpoints")[-1], model)
            log(f"ktm: stage {stage.name} already finished; weights restored")
            if not next(s for s in summaries if s["stage"] == stage.name)["passed"]:
                break
            continue
        stage_cfg = dataclasses.replace(
            config,
            steps=round_steps * max_rounds,
            eval_every=round_steps,
            save_every=round_steps,
            warmup_steps=config.warmup_steps if i == 0 else 0,
        )
        log(
            f"ktm: stage {i + 1}/{len(stages)} {stage.name}: {len(stage.train)} train / "
            f"{len(stage.test)} test examples, pass at {metric} >= {stage.threshold}"
        )

        def evaluate(m: KTMModel, st: Stage = stage) -> dict:
            return evaluate_classification(m, task, st.test, eval_batch_size)

        result = train(
            model,
            [e.to_example() for e in stage.train],
            stage_cfg,
            stage_dir,
            evaluate=evaluate,
            should_stop=lambda m, t=stage.threshold: m.get(metric, 0) >= t,
            resume=resume,
            teacher=teacher,
        )
        final = result.evals[-1]
        summary = {
            "stage": stage.name,
            "passed": final.get(metric, 0) >= stage.threshold,
            "steps": result.steps_done,
            "seconds": round(sum(r["seconds"] for r in result.history), 1),
            "metrics": final,
        }
        summaries.append(summary)
        if process_state().is_main_process:
            write_json_atomic(state_file, summaries)
        if not summary["passed"]:
            log(f"ktm: stage {stage.name} did not pass after {max_rounds} rounds; stopping")
            break
    return summaries
