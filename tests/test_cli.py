"""The CLI end to end on the tiny model, and every bad input → one line, exit code 2."""

import json
import subprocess
import sys

import pytest

from ktm.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ktm.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def tree_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("tree")
    assert (
        main(["data", "tree", "--train-trees", "40", "--test-trees", "8", "--out", str(out)]) == 0
    )
    return out


def train_args(model_dir, data, out) -> list[str]:
    options = "--k 4 --steps 4 --batch-size 4 --save-every 2 --no-progress"
    return ["train", "--model", str(model_dir), "--data", str(data), "--out", str(out),
            *options.split()]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tree_data, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(train_args(tiny_model_dir, tree_data, out)) == 0
    return out


def test_data_tree_writes_splits(tree_data):
    meta = json.loads((tree_data / "meta.json").read_text())
    assert meta["train_examples"] > 0 and meta["balance"] is True
    first = json.loads((tree_data / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "label"} and first["label"] in ("true", "false")


def test_train_writes_everything(trained):
    for name in ("config.json", "metrics.json", "train_log.jsonl", "evals.json"):
        assert (trained / name).is_file(), name
    assert (trained / "model" / "ktm_config.json").is_file()
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["ktm"]["k"] == 4 and cfg["train"]["steps"] == 4
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "f1_true", "majority_baseline"):
        assert key in metrics["test"]


def test_eval_and_generate(trained, tree_data, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["eval", str(trained), "--data", str(tree_data), "--out", str(out)]) == 0
    assert "balanced acc" in capsys.readouterr().out
    assert json.loads(out.read_text())["k"] == 4
    code = main(
        [
            "generate",
            str(trained),
            "--prompt",
            "Tree: +AB\n++CD, Answer: ",
            "--max-new-tokens",
            "3",
            "--json",
        ]
    )
    assert code == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["tokens_out"] < line["tokens_in"]


def test_train_and_generate_with_selective_expansion(tree_data, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "x"
    args = train_args(tiny_model_dir, tree_data, out)
    assert main([*args, "--budget", "0.4", "--steps", "2"]) == 0
    assert json.loads((out / "model" / "ktm_config.json").read_text())["config"]["budget"] == 0.4
    prompt = "Tree: +AB\n++CD\n++EF\n+++GH, Task: Parent/Child Relationship, Parent: CD, Child: GH"
    rows = []
    for extra in ([], ["--budget-positions", "12"], ["--budget", "0.25"]):
        capsys.readouterr()
        assert main(["generate", str(out), "--prompt", prompt, "--max-new-tokens", "2",
                     "--json", *extra]) == 0  # fmt: skip
        rows.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    t = rows[0]["tokens_in"]
    assert -(-t // 4) < rows[0]["tokens_out"] <= int(0.4 * t) and rows[0]["kept"]
    assert rows[1]["tokens_out"] <= 12
    assert rows[2]["tokens_out"] == -(-t // 4)  # 0.25: no more positions than merging all
    assert main(["generate", str(out), "--prompt", prompt, "--budget-positions", "2"]) == 2


def test_config_file_supplies_options(tree_data, tiny_model_dir, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "model": str(tiny_model_dir),
                "data": str(tree_data),
                "k": 2,
                "steps": 2,
                "batch-size": 2,
                "out": str(tmp_path / "r"),
                "no_progress": True,
            }
        )
    )
    assert main(["train", "--config", str(cfg), "--steps", "1"]) == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["ktm"]["k"] == 2 and saved["train"]["steps"] == 1  # CLI wins over the file


BAD = {
    "k below 1": (["train", "--k", "0", "--out", "{tmp}/a"], "k must be"),
    "missing data folder": (["train", "--data", "{tmp}/nope", "--out", "{tmp}/b"], "not found"),
    "unknown model": (
        ["train", "--model", "no-such/model-xyz", "--out", "{tmp}/c", "--steps", "1"],
        "model",
    ),
    "missing checkpoint": (["generate", "{tmp}/nothing", "--prompt", "hi"], "not found"),
    "unknown stage": (["data", "tree", "--stage", "giant", "--out", "{tmp}/d"], "stage"),
    "malformed config": (["train", "--config", "{tmp}/bad.json"], "not valid JSON"),
    "unknown config key": (["train", "--config", "{tmp}/unknown.json"], "unknown option"),
    "bad option value": (["train", "--steps", "zero", "--out", "{tmp}/e"], "integer"),
    "no subcommand": ([], "required"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(case, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "unknown.json").write_text('{"kay": 4}')
    args, expected = BAD[case]
    proc = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ktm: error")]
    assert len(lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "unknown.json"]


def test_empty_prompt_and_mismatched_checkpoint(trained, tmp_path):
    proc = run("generate", str(trained), "--prompt", "   ")
    assert proc.returncode == 2 and "empty" in proc.stderr and "Traceback" not in proc.stderr
    cfg = json.loads((trained / "model" / "ktm_config.json").read_text())
    cfg["base_model_info"]["hidden_size"] = 999
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(trained / "model", broken)
    (broken / "ktm_config.json").write_text(json.dumps(cfg))
    proc = run("generate", str(broken), "--prompt", "hello")
    assert proc.returncode == 2 and "hidden_size 999" in proc.stderr


def test_existing_run_refused_without_resume(trained, tree_data, tiny_model_dir):
    proc = run(*train_args(tiny_model_dir, tree_data, trained))
    assert proc.returncode == 2 and "--resume" in proc.stderr


def test_train_and_eval_own_generation_data(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "notes.csv"
    data.write_text("doc,code\n" + "".join(f"note {i} says {i * 3},{i * 3}\n" for i in range(8)))
    common = ["--task", "custom", "--train-file", str(data), "--test-file", str(data),
              "--template", "{doc}", "--suffix-template", " Code:", "--answer-field", "code",
              "--gen-limit", "2"]  # fmt: skip
    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_model_dir), "--k", "2", "--steps", "2",
            "--batch-size", "2", "--out", str(out), "--no-progress", *common]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["perplexity"] > 1 and metrics["test"]["generated"] == 2
    assert metrics["data"]["train"]["rows_read"] == 8
    assert "perplexity" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert saved["data"]["template"] == "{doc}" and saved["data"]["answer_field"] == "code"
    assert main(["eval", str(out), *common, "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["generated"] == 2


def test_bad_data_row_exits_2_and_writes_nothing(tiny_model_dir, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "fine", "label": "a"}\n{"text": "", "label": "b"}\n')
    args = ["train", "--model", str(tiny_model_dir), "--task", "custom", "--train-file",
            str(data), "--test-file", str(data), "--template", "T: {text}", "--answer-field",
            "label", "--labels", "a,b", "--steps", "1", "--out", str(tmp_path / "r")]  # fmt: skip
    proc = run(*args)
    assert proc.returncode == 2 and "d.jsonl:2: field 'text' is empty" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()


def test_resume_with_only_the_folder(trained, tmp_path):
    """`--resume --out RUN` alone reads RUN's options; with nothing (or the wrong kind of run)
    there, it says so and writes nothing."""
    proc = run("train", "--resume", "--out", str(tmp_path / "none"))
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "none").exists()
    proc = run("pretrain", "--resume", "--out", str(trained))
    assert (
        proc.returncode == 2 and "holds a `ktm train` run, not a `ktm pretrain` run" in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_run_from_an_older_version_resumes(trained, tree_data, tiny_model_dir, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["ktm"]["merger_norm"], cfg["data"]["gen_limit"]  # options added later
    (old / "config.json").write_text(json.dumps(cfg))
    assert main([*train_args(tiny_model_dir, tree_data, old), "--resume"]) == 0
    proc = run(*train_args(tiny_model_dir, tree_data, old), "--resume", "--steps", "5")
    assert proc.returncode == 2 and "other options" in proc.stderr


def test_row_beyond_the_context_is_refused_or_skipped(tiny_model_dir, tmp_path):
    """No --max-prompt-tokens: a prompt past the tiny model's 512 positions is an error naming
    file and line at K = 1; --skip-bad-rows trains on the rest and reports the count; at
    K = 4 the merged prompt fits and the row is used."""
    rows = [{"text": f"short note {i}", "label": "ab"[i % 2]} for i in range(6)]
    rows.insert(2, {"text": "word " * 900, "label": "a"})  # ~900 tokens, line 3
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["train", "--model", str(tiny_model_dir), "--task", "custom", "--train-file",
              str(data), "--test-file", str(data), "--template", "T: {text}", "--answer-field",
              "label", "--labels", "a,b", "--steps", "1", "--batch-size", "2", "--no-progress",
              "--pretrain-steps", "0"]  # fmt: skip
    proc = run(*common, "--k", "1", "--out", str(tmp_path / "r1"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "d.jsonl:3: the example needs" in proc.stderr and "holds 512" in proc.stderr
    assert not (tmp_path / "r1").exists()

    assert main([*common, "--k", "1", "--skip-bad-rows", "--out", str(tmp_path / "r2")]) == 0
    over = json.loads((tmp_path / "r2" / "metrics.json").read_text())["data"]["context"]
    assert over["positions"] == 512 and over["k"] == 1
    (stage,) = over["over"].values()
    assert stage["train"]["skipped_rows"] == 1 and "d.jsonl:3" in stage["train"]["first_reasons"][0]

    assert main([*common, "--k", "4", "--out", str(tmp_path / "r4")]) == 0
    over = json.loads((tmp_path / "r4" / "metrics.json").read_text())["data"]["context"]
    assert over["k"] == 4 and all(s["skipped_rows"] == 0 for s in over["over"]["custom"].values())
