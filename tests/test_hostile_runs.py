"""Runs that cannot overwrite each other, and a full or read-only disk that ends a run with
one line while the newest checkpoint stays intact."""

import errno
import json
import os
import subprocess
import sys
import time

import pytest

from ktm.cli import main
from ktm.errors import KTMError
from ktm.recipes.run_lock import LOCK_NAME, RunLock


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    first = RunLock(tmp_path / "run", "train")
    first.acquire()
    holder = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid() and holder["command"] == "train"
    other = RunLock(tmp_path / "run", "train")
    other.held = False
    # another live process holds it: pretend the lock is a live neighbour's
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps({**holder, "pid": os.getppid()}))
    with pytest.raises(KTMError, match=rf"being written by `ktm train` \(PID {os.getppid()}"):
        other.acquire()
    first.held = False


def test_a_stale_lock_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run").mkdir()
    lock = {"pid": dead.pid, "host": os.uname().nodename, "command": "train", "since": "then"}
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(lock))
    mine = RunLock(tmp_path / "run", "train")
    mine.acquire()
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    mine.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def _train_cmd(model, data, out, *extra):
    return [sys.executable, "-m", "ktm.cli", "train", "--model", str(model), "--data", str(data),
            "--k", "1", "--steps", "100000", "--batch-size", "2",
            "--no-progress", "--out", str(out), *extra]  # fmt: skip


@pytest.fixture
def trees(train_on_trees):
    return train_on_trees.data  # a few generated `small` trees (see conftest)


def test_two_trains_on_one_folder_one_is_refused(tiny_model_dir, trees, tmp_path):
    """While a run writes its folder, a second writer (a resume, or the same command again)
    is refused naming the first; the first is not disturbed."""
    out = tmp_path / "run"
    first = subprocess.Popen(_train_cmd(tiny_model_dir, trees, out), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "config.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read()
        second = subprocess.run(_train_cmd(tiny_model_dir, trees, out, "--resume"),
                                capture_output=True, text=True)  # fmt: skip
        assert second.returncode == 2 and "is being written by `ktm train`" in second.stderr
        assert f"PID {first.pid}" in second.stderr and second.stderr.count("\n") == 1
        again = subprocess.run(_train_cmd(tiny_model_dir, trees, out), capture_output=True,
                               text=True)  # fmt: skip
        assert again.returncode == 2 and "already holds a run" in again.stderr
        assert first.poll() is None  # the first run goes on
        holder = json.loads((out / LOCK_NAME).read_text())
        assert holder["pid"] == first.pid and holder["command"] == "train"
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize(
    "error, why",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (OSError(errno.EROFS, "Read-only file system"), "not writable"),
    ],
)
def test_disk_trouble_ends_with_one_line_and_the_last_checkpoint_intact(
    tiny_model_dir, trees, tmp_path, monkeypatch, capsys, error, why
):
    from ktm.training import checkpoint

    real, calls = checkpoint.save_file, []

    def fill_up(tensors, path):
        calls.append(path)
        if len(calls) >= 2:  # the second checkpoint finds the disk full
            raise error
        real(tensors, path)

    monkeypatch.setattr(checkpoint, "save_file", fill_up)
    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_model_dir), "--data", str(trees), "--k", "4",
            "--steps", "6", "--save-every", "2", "--pretrain-steps", "0", "--batch-size", "2",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("ktm: error") or "Traceback" in x]
    assert len(lines) == 1, err
    err = lines[0]
    assert why in err and "step-000002, is intact" in err
    assert "--resume" in err
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step-000002"]  # no half-written folder beside it
    monkeypatch.setattr(checkpoint, "save_file", real)  # room made: the run continues
    assert main(args + ["--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 6


def test_a_killed_runs_partial_checkpoint_is_cleaned_at_resume(tmp_path):
    from ktm.training.checkpoint import clean_partial

    folder = tmp_path / "checkpoints"
    (folder / ".step-000004.abc.tmp").mkdir(parents=True)
    (folder / "step-000002").mkdir()
    assert [p.name for p in clean_partial(folder)] == [".step-000004.abc.tmp"]
    assert [p.name for p in folder.iterdir()] == ["step-000002"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--out", "x", "--seed", "1180591620717411303424"], "seed must be below 2**32"),
        (
            ["generate", "ckpt", "--prompt", "a", "--sample", "--seed", str(2**70)],
            "seed must be an integer in [0, 2**63)",
        ),
    ],
)
def test_huge_seeds_are_refused_clearly(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_csv_field_of_any_length_is_read(tmp_path, tokenizer):
    """A field over the csv module's default 131,072 characters is read, then cut by the
    run's limits."""
    from ktm.recipes.data import DataConfig, load_stages

    f = tmp_path / "long.csv"
    long_text = "word " * 60_000  # 300,000 characters
    f.write_text(f'text,label\n"{long_text}",good\n"short one",bad\n')
    data = DataConfig(task="custom", train_file=str(f), test_file=str(f), template="{text}",
                      answer_field="label", labels=["good", "bad"],
                      max_prompt_tokens=50)  # fmt: skip
    stages, info = load_stages(data, tokenizer)
    assert len(stages[0].test) == 2 and info["test"]["truncated"] == 1


def test_a_huge_jsonl_field_is_refused_or_cut_before_tokenizing(tmp_path, tokenizer):
    """A 10 MB field is a bad row at once (named by file and line), or — when it is the field
    the run cuts — pre-cut by length so the exact cut is quick."""
    from ktm.recipes.data import DataConfig, load_stages

    f = tmp_path / "huge.jsonl"
    rows = [{"text": "word " * 2_000_000, "label": "good"}, {"text": "short", "label": "bad"},
            {"text": "fine too", "label": "good"}]  # fmt: skip
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = dict(task="custom", train_file=str(f), test_file=str(f), template="Review: {text}",
                answer_field="label", labels=["good", "bad"])  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(KTMError, match=r"huge.jsonl:1: field 'text' has 10,000,000 characters"):
        load_stages(DataConfig(**base), tokenizer)
    stages, info = load_stages(DataConfig(**base, max_prompt_tokens=40), tokenizer)
    assert info["test"]["truncated"] == 1 and len(stages[0].test) == 3
    assert time.monotonic() - t0 < 10
