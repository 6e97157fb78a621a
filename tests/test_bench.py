"""Benchmarks run on the tiny model (they measure; these tests only check they work)."""

import json

import pytest

from ktm.bench.arms import arm_config
from ktm.cli import main
from ktm.errors import KTMError


def test_arm_names():
    from ktm.config import KTMConfig
    from ktm.runs import DataConfig, RunConfig
    from ktm.training import TrainConfig

    base = RunConfig("m", KTMConfig(), TrainConfig(), DataConfig())
    assert arm_config(base, "k8").ktm.k == 8
    assert arm_config(base, "k4-mean").ktm.merger == "mean"
    assert arm_config(base, "k2-random").ktm.merger_init == "random"
    with pytest.raises(KTMError, match="bad arm"):
        arm_config(base, "four")


def test_bench_tree_writes_results_and_skips_finished_arms(tiny_model_dir, tmp_path, capsys):
    args = ["bench", "tree", "--model", str(tiny_model_dir), "--arms", "k2,k1", "--steps", "2",
            "--batch-size", "2", "--train-trees", "8", "--test-trees", "3",
            "--out", str(tmp_path / "b"), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [r["arm"] for r in results["arms"]] == ["k2", "k1"]
    k2, k1 = results["arms"]
    assert k1["kept"] == 1.0 and 0.5 <= k2["kept"] < 0.6
    assert k2["tokens_out"] < k2["tokens_in"]
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("done before") == 2


def test_speed_benchmarks_write_json(tiny_model_dir, tmp_path):
    out = tmp_path / "s.json"
    assert main(["bench", "speed", "--model", str(tiny_model_dir), "--k", "1,4", "--lengths",
                 "64", "--repeats", "1", "--out", str(out)]) == 0  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [r["k"] for r in rows] == [1, 4] and rows[1]["positions"] == 16
    out = tmp_path / "t.json"
    assert main(["bench", "train-speed", "--model", str(tiny_model_dir), "--k", "1,2",
                 "--steps", "1", "--batch-size", "2", "--out", str(out)]) == 0  # fmt: skip
    assert {r["k"] for r in json.loads(out.read_text())["rows"]} == {1, 2}
