"""Benchmarks run on the tiny model (they measure; these tests only check they work)."""

import json
import time

import pytest

from ktm.cli import main
from ktm.errors import KTMError
from ktm.recipes.bench.arm_spec import arm_config


def test_arm_names():
    from ktm.config import KTMConfig
    from ktm.recipes.data import DataConfig
    from ktm.recipes.run_config import RunConfig
    from ktm.training import TrainConfig

    base = RunConfig("m", KTMConfig(), TrainConfig(), DataConfig())
    assert arm_config(base, "k8").ktm.k == 8
    assert arm_config(base, "k4-mean").ktm.merger == "mean"
    assert arm_config(base, "k2-random").ktm.merger_init == "random"
    with pytest.raises(KTMError, match="bad arm"):
        arm_config(base, "four")
    with pytest.raises(KTMError, match="give --init-from"):
        arm_config(base, "k4-pre")
    pre = RunConfig("m", KTMConfig(), TrainConfig(), DataConfig(), init_from="pre/model")
    assert arm_config(pre, "k4-pre").init_from == "pre/model"
    assert arm_config(pre, "k4").init_from is None
    # Pre-training on the task's prompts: the k<K> arms (ktm's recipe) only.
    arms = ("k4", "k4-fresh", "k4-random", "k4-mean", "k4-pre", "k1", "first4")
    steps = {a: arm_config(pre, a).resolved_pretrain_steps for a in arms}
    assert steps == {"k4": 300, "k4-fresh": 0, "k4-random": 0, "k4-mean": 0, "k4-pre": 0,
                     "k1": 0, "first4": 0}  # fmt: skip
    assert (
        arm_config(base, "k8@0.3").ktm.budget == 0.3 and arm_config(base, "k8").ktm.budget is None
    )
    assert arm_config(base, "k4-fresh@.5").ktm.budget == 0.5
    for bad in ("k1@0.5", "k4@1.5", "k4@"):
        with pytest.raises(KTMError, match="bad arm"):
            arm_config(base, bad)
    explicit = RunConfig("m", KTMConfig(), TrainConfig(), DataConfig(), pretrain_steps=50)
    assert arm_config(explicit, "k8").resolved_pretrain_steps == 50
    assert arm_config(explicit, "k1").resolved_pretrain_steps == 0


def test_bench_expansion_arm_counts_the_positions_it_reads(tiny_model_dir, tmp_path):
    args = ["bench", "tree", "--model", str(tiny_model_dir), "--arms", "k8@0.25,k4-fresh,prune4",
            "--steps", "1", "--batch-size", "2", "--train-trees", "8", "--test-trees", "3",
            "--pretrain-steps", "0", "--out", str(tmp_path / "b"), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    arms = {r["arm"]: r for r in json.loads((tmp_path / "b" / "results.json").read_text())["arms"]}
    x, k4 = arms["k8@0.25"], arms["k4-fresh"]
    # at most K = 4's positions (⌊T/4⌋ ≤ ⌈T/4⌉), more than merging every block of 8 reads
    assert x["k"] == 8 and x["tokens_in"] == k4["tokens_in"]
    assert (
        k4["tokens_out"] / 2 + 1
        < x["tokens_out"]
        <= k4["tokens_out"]
        == arms["prune4"]["tokens_out"]
    )


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
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["k"] for r in rows] == [1, 4] and rows[1]["positions"] == 16
    assert result["peak_rss_mib"] > 0 and out.with_suffix(".png").is_file()
    k1, k4 = rows
    # After the prefill the KV cache holds 16 compressed positions instead of 64.
    assert k1["kv_cache_bytes"] == 4 * k4["kv_cache_bytes"] > 0
    assert k4["flops_ratio_vs_k1"] > 1.0 and k1["flops_ratio_vs_k1"] == 1.0
    assert k1["merger_flops_share"] == 0 < k4["merger_flops_share"] < 1  # K = 1: no merger
    assert k1["decode_tokens_per_s"] > 0 and k4["decode_vs_k1"] > 0
    assert k1["prefill_peak_mib"] >= 0 and k4["prefill_peak_mib"] >= 0
    ctx = tmp_path / "c.json"  # a merger that reads 4 tokens of context costs more
    assert main(["bench", "speed", "--model", str(tiny_model_dir), "--k", "1,4", "--lengths", "64",
                 "--repeats", "1", "--merger-context", "4", "--out", str(ctx)]) == 0  # fmt: skip
    c1, c4 = json.loads(ctx.read_text())["rows"]
    assert c1["merger_flops_share"] == 0 and c4["merger_flops_share"] > k4["merger_flops_share"]
    lay = tmp_path / "l.json"  # so does one that reads the states after the first layer
    assert main(["bench", "speed", "--model", str(tiny_model_dir), "--k", "1,4", "--lengths", "64",
                 "--repeats", "1", "--merger-layers", "1", "--out", str(lay)]) == 0  # fmt: skip
    l1, l4 = json.loads(lay.read_text())["rows"]
    assert l1["merger_flops_share"] == 0 and l4["merger_flops_share"] > k4["merger_flops_share"]
    assert json.loads(lay.read_text())["merger_layers"] == 1
    wide = tmp_path / "x.json"  # selective expansion reads up to its budget: 24 of 64 here
    assert main(["bench", "speed", "--model", str(tiny_model_dir), "--k", "1,4", "--lengths", "64",
                 "--repeats", "1", "--budget", "0.375", "--out", str(wide)]) == 0  # fmt: skip
    x1, x4 = json.loads(wide.read_text())["rows"]
    assert x1["positions"] == 64 and 16 < x4["positions"] <= 24
    assert x4["kv_cache_bytes"] * 64 == x1["kv_cache_bytes"] * x4["positions"]
    out = tmp_path / "t.json"
    assert main(["bench", "train-speed", "--model", str(tiny_model_dir), "--k", "1,2",
                 "--steps", "1", "--batch-size", "2", "--out", str(out)]) == 0  # fmt: skip
    assert {r["k"] for r in json.loads(out.read_text())["rows"]} == {1, 2}


def test_baseline_arm_names():
    from ktm.recipes.bench.arm_spec import parse_arm

    assert parse_arm("first4").reduction == "first" and parse_arm("first4").budget_k == 4
    assert parse_arm("prune3").k == 1
    assert not parse_arm("zeroshot").trained and not parse_arm("majority").trained
    with pytest.raises(KTMError, match="bad arm"):
        parse_arm("trunc4")


def _custom_files(tmp_path):
    rows = [
        {"text": f"item {i} was {'great fun to use' if i % 3 else 'broken on arrival'}",
         "label": "good" if i % 3 else "bad"}
        for i in range(12)
    ]  # fmt: skip
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bench_custom_task_with_baselines_writes_results_and_plots(
    tiny_model_dir, tmp_path, capsys
):
    path = _custom_files(tmp_path)
    out = tmp_path / "b"
    args = ["bench", "custom", "--model", str(tiny_model_dir),
            "--arms", "k2,k1,k2-mean,first2,last2,prune2,zeroshot,majority",
            "--train-file", str(path), "--test-file", str(path),
            "--template", "Review: {text}, Label:", "--answer-field", "label",
            "--labels", "good,bad", "--steps", "2", "--batch-size", "2",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    arms = {r["arm"]: r for r in results["arms"]}
    assert list(arms) == ["k2", "k1", "k2-mean", "first2", "last2", "prune2", "zeroshot",
                          "majority"]  # fmt: skip
    # Every arm at K = 2's budget reads the same number of positions; K = 1 reads them all.
    budget = {arms[a]["tokens_out"] for a in ("k2", "k2-mean", "first2", "last2", "prune2")}
    assert len(budget) == 1 and 0.5 <= arms["k2"]["kept"] < 0.6
    assert arms["k1"]["kept"] == 1.0 and arms["zeroshot"]["kept"] == 1.0
    assert arms["majority"]["balanced_accuracy"] == 0.5
    assert arms["majority"]["accuracy"] == pytest.approx(8 / 12)
    for name in ("pareto.png", "compute.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| prune2 |" in (out / "results.md").read_text()
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("done before") == 8


def test_bench_generation_task(tiny_model_dir, tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text("".join(
        json.dumps({"doc": f"note {i}: the code is {i * 7}", "a": str(i * 7)}) + "\n"
        for i in range(6)
    ))  # fmt: skip
    out = tmp_path / "g"
    assert main(["bench", "custom", "--model", str(tiny_model_dir), "--arms", "k2,first2",
                 "--train-file", str(path), "--test-file", str(path), "--template", "{doc}",
                 "--suffix-template", " Code:", "--answer-field", "a", "--gen-limit", "2",
                 "--max-answer-tokens", "8", "--steps", "1", "--batch-size", "2",
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    rows = json.loads((out / "results.json").read_text())["arms"]
    assert all(r["perplexity"] > 1 and r["generated"] == 2 for r in rows)
    assert (out / "pareto.png").is_file()
    # the trivial answer of a generation task: the commonest training answer, no model
    assert main(["bench", "custom", "--model", str(tiny_model_dir), "--arms", "majority",
                 "--train-file", str(path), "--test-file", str(path), "--template", "{doc}",
                 "--answer-field", "a", "--out", str(tmp_path / "m")]) == 0  # fmt: skip
    (row,) = json.loads((tmp_path / "m" / "results.json").read_text())["arms"]
    assert row["generated"] == 6 and row["exact_match"] == pytest.approx(1 / 6)
    # copying needs an input field to copy: a custom task names none
    assert main(["bench", "custom", "--model", str(tiny_model_dir), "--arms", "copy",
                 "--train-file", str(path), "--test-file", str(path), "--template", "{doc}",
                 "--answer-field", "a", "--out", str(tmp_path / "c")]) == 2  # fmt: skip


def test_labels_at_one_budget_are_spread_apart():
    from ktm.recipes.bench.plots import label_offsets

    # three arms on one vertical line (same budget), 2 px apart; one far to the right
    got = label_offsets([(10, 100), (12, 102), (11, 101), (300, 100)], gap=15)
    assert got[0] == 0 and got[3] == 0  # the lowest, and the one on its own, stay put
    ys = sorted(y + dy for (_, y), dy in zip([(10, 100), (12, 102), (11, 101)], got[:3]))
    assert all(b - a >= 15 for a, b in zip(ys, ys[1:]))


def test_pareto_front():
    from ktm.recipes.bench.plots import pareto_front

    pts = [(0.25, 0.9), (0.5, 0.8), (0.5, 0.95), (1.0, 0.99), (0.3, 0.5)]
    assert pareto_front(pts, higher_better=True) == [0, 2, 3]
    assert pareto_front([(0.25, 5.0), (0.5, 3.0), (1.0, 4.0)], higher_better=False) == [0, 1]


def test_peak_memory_sees_a_transient_allocation():
    import torch

    from ktm.recipes.bench.memory import PeakMemory, current_rss_bytes

    if current_rss_bytes() is None:
        pytest.skip("no /proc on this platform")
    with PeakMemory() as mem:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched, then freed
        x += 1
        time.sleep(0.05)
        del x
    assert mem.peak_bytes is not None and mem.peak_bytes > 48 * 2**20


def test_speed_refuses_lengths_beyond_the_context(tiny_model_dir, tmp_path, capsys):
    code = main(["bench", "speed", "--model", str(tiny_model_dir), "--k", "1", "--lengths",
                 "100000", "--repeats", "1", "--out", str(tmp_path / "s.json")])  # fmt: skip
    assert code == 2
    assert "exceeds the model's context" in capsys.readouterr().err


def test_bench_jobs_train_arms_side_by_side_with_the_same_results(tiny_model_dir, tmp_path, capsys):
    args = ["bench", "tree", "--model", str(tiny_model_dir), "--arms", "k2-fresh,k1,majority",
            "--steps", "2", "--batch-size", "2", "--train-trees", "8", "--test-trees", "3",
            "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    out = capsys.readouterr().out
    assert "training 2 arms, 2 at a time" in out and "done before" not in out
    one, two = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert (one["jobs"], two["jobs"]) == (1, 2)
    for a, b in zip(one["arms"], two["arms"], strict=True):
        assert a["arm"] == b["arm"] and a.get("steps") == b.get("steps")
        assert a["balanced_accuracy"] == pytest.approx(b["balanced_accuracy"])
    for arm in ("k2-fresh", "k1"):  # each arm trained in its own folder, with its own losses
        logs = [(tmp_path / d / arm / "train_log.jsonl").read_text() for d in ("one", "two")]
        losses = [[json.loads(line)["loss"] for line in log.splitlines()] for log in logs]
        assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    assert main([*args, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0  # nothing to redo
    assert capsys.readouterr().out.count("done before") == 3
    assert main([*args, "--jobs", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--jobs must be an integer >= 1, got 0" in capsys.readouterr().err


def test_arm_steps_train_the_named_arms_for_their_own_steps(tiny_model_dir, tmp_path, capsys):
    args = ["bench", "tree", "--model", str(tiny_model_dir), "--arms", "k2-fresh,k1",
            "--steps", "3", "--eval-every", "2", "--batch-size", "2", "--train-trees", "8",
            "--test-trees", "3", "--no-progress", "--out", str(tmp_path / "b")]  # fmt: skip
    assert main([*args, "--arm-steps", "k1=1"]) == 0
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["arms"]
    assert {r["arm"]: r["steps"] for r in rows} == {"k2-fresh": 3, "k1": 1}
    config = json.loads((tmp_path / "b" / "k1" / "config.json").read_text())
    assert config["train"]["steps"] == 1 and config["train"]["eval_every"] == 0
    capsys.readouterr()
    for bad, message in (("k8=5", "not one of the arms"), ("k1=0", "use ARM=STEPS"),
                         ("k1", "use ARM=STEPS")):  # fmt: skip
        assert main([*args, "--arm-steps", bad, "--out", str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err
