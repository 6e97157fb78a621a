"""Curriculum training on the tiny model: pass → next stage, fail → stop, resume skips."""

import json

from ktm.config import KTMConfig
from ktm.recipes.data import DataConfig
from ktm.recipes.run_config import RunConfig
from ktm.recipes.train import run_training
from ktm.training import TrainConfig


def _cfg(tiny_model_dir, **data):
    return RunConfig(
        model=str(tiny_model_dir),
        ktm=KTMConfig(k=2),
        train=TrainConfig(batch_size=4, lr=1e-3, warmup_steps=0, progress=False),
        data=DataConfig(stages=["small", "xsmall"], train_trees=10, test_trees=3, **data),
        curriculum=True,
        round_steps=2,
        max_rounds=2,
    )


def test_curriculum_moves_on_and_stops(tiny_model_dir, tmp_path, capsys):
    cfg = _cfg(tiny_model_dir, pass_threshold=0.0, final_threshold=1.0)
    result = run_training(cfg, tmp_path / "run", progress=False)
    stages = result["stages"]
    assert [s["stage"] for s in stages] == ["small", "xsmall"]
    assert stages[0]["passed"] and stages[0]["steps"] == 2  # passed at the first check
    assert not stages[1]["passed"] and stages[1]["steps"] == 4  # capped at max_rounds
    assert result["stage"] == "xsmall"
    saved = [json.loads((tmp_path / "run" / f"stage-{i}-{s}" / "metrics.json").read_text())
             for i, s in enumerate(["small", "xsmall"])]  # fmt: skip
    assert saved == stages
    again = run_training(cfg, tmp_path / "run", resume=True, progress=False)
    assert "already finished" in capsys.readouterr().out
    assert again["stages"] == stages


def test_failed_stage_ends_the_curriculum(tiny_model_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, pass_threshold=1.0, final_threshold=1.0)
    result = run_training(cfg, tmp_path / "run", progress=False)
    assert [s["stage"] for s in result["stages"]] == ["small"]
    assert result["stage"] == "small"
