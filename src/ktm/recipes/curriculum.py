"""Curriculum training: move to the next stage once the current one passes its threshold.

Each stage is a part of the run (``<run>/stage-<i>-<name>``, see :class:`RunFolder`): a
finished stage is skipped on resume (its weights restored), a started one resumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import KTMError
from ..io_utils import read_json
from ..model import KTMModel
from ..tasks.base import ClassificationTask
from ..training import TrainConfig, train
from ..training.checkpoint import list_checkpoints, load_trainable
from .data import Stage
from .evaluate import evaluate_classification
from .run_folder import RunFolder

LEGACY_STATE = "curriculum.json"  # where runs before 0.1.1 listed their finished stages


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
    run = RunFolder(output_dir, "train")
    legacy = run.path / LEGACY_STATE
    done_before = (
        {s["stage"]: s for s in read_json(legacy, "curriculum state")}
        if resume and legacy.is_file()
        else {}
    )
    summaries: list[dict] = []
    for i, stage in enumerate(stages):
        name = f"stage-{i}-{stage.name}"
        stage_cfg = dataclasses.replace(
            config,
            steps=round_steps * max_rounds,
            eval_every=round_steps,
            save_every=round_steps,
            warmup_steps=config.warmup_steps if i == 0 else 0,
        )

        def train_stage(
            part: RunFolder, _again: bool, i: int = i, st: Stage = stage, cfg=stage_cfg
        ) -> None:
            log(
                f"ktm: stage {i + 1}/{len(stages)} {st.name}: {len(st.train)} train / "
                f"{len(st.test)} test examples, pass at {metric} >= {st.threshold}"
            )
            result = train(
                model,
                [e.to_example() for e in st.train],
                cfg,
                part.path,
                evaluate=lambda m: evaluate_classification(m, task, st.test, eval_batch_size),
                should_stop=lambda m: m.get(metric, 0) >= st.threshold,
                resume=resume,
                teacher=teacher,
            )
            final = result.evals[-1]
            part.finish(
                {
                    "stage": st.name,
                    "passed": final.get(metric, 0) >= st.threshold,
                    "steps": result.steps_done,
                    "seconds": round(sum(r["seconds"] for r in result.history), 1),
                    "wall_seconds": result.wall_seconds,
                    "metrics": final,
                }
            )

        if stage.name in done_before:
            summary, ran = done_before[stage.name], False
        else:
            summary, ran = run.run_part(name, train_stage)
        if not ran:
            load_trainable(list_checkpoints(run.path / name / "checkpoints")[-1], model)
            log(f"ktm: stage {stage.name} already finished; weights restored")
        summaries.append(summary)
        if not summary["passed"]:
            if ran:
                log(f"ktm: stage {stage.name} did not pass after {max_rounds} rounds; stopping")
            break
    return summaries
