"""What a run tells its user: the time of every phase, progress as it happens, generation's
trivial baselines, and the benchmark data a clone can fetch."""

import json

import pytest
import torch

from ktm import KTMConfig, KTMModel
from ktm.cli import main
from ktm.training import Example, TrainConfig, train

EXAMPLES = [Example(f"Item {i}: " + "word " * (i % 5 + 1), "yes" if i % 2 else "no")
            for i in range(24)]  # fmt: skip


def _commit(i: int) -> dict:
    old = "".join(f"x{i}_{j} = {j}\n" for j in range(3))
    return {"old_contents": old, "subject": f"bump {i}", "new_contents": old.replace("= 1", "= 2")}


def test_metrics_time_covers_pretraining_and_evaluation(train_on_trees):
    """metrics.json's wall time is the whole run: the pre-training phase (its warm-up in),
    loading, training and the final evaluation, each also stated apart."""
    out = train_on_trees("--k", "4", "--steps", "3", "--pretrain-steps", "3")
    m = json.loads((out / "metrics.json").read_text())
    seconds = m["seconds"]
    assert set(seconds) == {"pretrain", "setup", "train", "final_eval"}
    assert seconds["pretrain"] > 0 and seconds["setup"] > 0 and seconds["final_eval"] >= 0
    assert m["wall_seconds"] == pytest.approx(sum(seconds.values()), abs=0.2)
    pre = json.loads((out / "pretrain" / "metrics.json").read_text())
    assert seconds["pretrain"] == pre["wall_seconds"] >= pre["train_seconds"]
    warm = json.loads((out / "pretrain" / "warmup-k2" / "metrics.json").read_text())
    assert pre["wall_seconds"] > warm["wall_seconds"] > 0
    assert m["wall_seconds"] > m["train_seconds"] + pre["train_seconds"]


def test_train_log_grows_as_steps_happen(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Each step is in train_log.jsonl when the next starts; without the bar a line goes to
    stderr (every 30 s; here every step)."""
    from ktm.training import step_log

    monkeypatch.setattr(step_log, "PRINT_EVERY_S", 0.0)
    torch.manual_seed(0)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    log = tmp_path / "run" / "train_log.jsonl"
    seen = []

    def check(record: dict) -> None:
        lines = log.read_text().splitlines()
        seen.append(len(lines))
        assert json.loads(lines[-1])["step"] == record["step"]

    cfg = TrainConfig(steps=4, batch_size=4, save_every=0, progress=False)
    train(model, EXAMPLES, cfg, tmp_path / "run", on_step=check)
    assert seen == [1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "ktm: step 1/4 loss" in err and "ktm: step 4/4 loss" in err


def test_generation_reports_its_rows_and_trivial_baselines(tiny_model_dir, tmp_path, tokenizer):
    from ktm.recipes.data import DataConfig, load_stages
    from ktm.recipes.evaluate import evaluate_task
    from ktm.tasks import get_task

    folder = tmp_path / "cp"
    folder.mkdir()
    for split, n in (("train", 6), ("test", 5)):
        rows = [_commit(i) for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = DataConfig(task="commitpack", data_dir=str(folder), gen_limit=3)
    stages, _ = load_stages(data, tokenizer)
    test = list(stages[0].test)
    assert all(e.input_text.startswith("x") for e in test)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    m = evaluate_task(model, get_task("commitpack"), test, 4, data.gen_limit, 8)
    assert m["generated"] == 3 and m["n"] == 5
    copies = [e.input_text.strip() == e.label.strip() for e in test[:3]]
    assert m["copy_exact_match"] == pytest.approx(sum(copies) / 3)
    assert 0 < m["copy_edit_similarity"] <= 1 and "trivial_edit_similarity" in m
    whole = evaluate_task(model, get_task("commitpack"), test[:2], 4, None, 4)
    assert whole["generated"] == 2  # default: the whole split (up to the cap)


def test_bench_scores_generation_baselines_without_a_model(tiny_model_dir, tmp_path):
    folder = tmp_path / "cp"
    folder.mkdir()
    for split, n in (("train", 6), ("test", 4)):
        rows = [_commit(i) for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "bench"
    assert main(["bench", "commitpack", "--model", str(tiny_model_dir), "--data", str(folder),
                 "--arms", "copy,majority", "--out", str(out)]) == 0  # fmt: skip
    arms = {a["arm"]: a for a in json.loads((out / "results.json").read_text())["arms"]}
    assert arms["copy"]["generated"] == 4 and arms["copy"]["edit_similarity"] > 0.8
    assert arms["majority"]["generated"] == 4 and arms["copy"]["tokens_out"] == 0


def test_data_command_writes_a_hub_dataset_locally(tmp_path, monkeypatch, capsys):
    """`ktm data commitpack` writes the paper's split as local JSONL any run reads (the hub is
    faked here: no network in tests)."""
    from ktm.tasks import commitpack

    rows = [{**_commit(i), "repos": "a/b", "message": "m"} for i in range(10)]
    monkeypatch.setattr(commitpack, "hub_jsonl", lambda repo, path: rows)
    monkeypatch.setattr(commitpack, "HUB_TEST_SIZE", 3)
    out = tmp_path / "cp"
    assert main(["data", "commitpack", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["rows"] == {"train": 7, "test": 3} and "bigcode/commitpackft" in meta["source"]
    first = json.loads((out / "test.jsonl").read_text().splitlines()[0])
    assert set(first) == {"old_contents", "subject", "new_contents"}
    assert main(["data", "commitpack", "--out", str(out)]) == 2  # never overwritten
    assert "already holds data" in capsys.readouterr().err
