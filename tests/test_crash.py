"""SIGKILL a training run at random points; --resume must finish it with the same result."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


def _train_cmd(model_dir, data, out, resume=False):
    """A resumed run is given only its folder: the options come from its config.json."""
    cmd = [sys.executable, "-m", "ktm.cli", "train", "--out", str(out), "--no-progress"]
    if resume:
        return cmd + ["--resume"]
    return cmd + ["--model", str(model_dir), "--data", str(data), "--k", "4", "--steps", "150",
                  "--batch-size", "4", "--save-every", "1", "--lr", "5e-3"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from ktm.cli import main

    out = tmp_path_factory.mktemp("crash-data")
    assert (
        main(["data", "tree", "--train-trees", "30", "--test-trees", "4", "--out", str(out)]) == 0
    )
    return out


def test_killed_runs_resume_to_the_same_result(tiny_model_dir, data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    # Kill times scale with how long this machine takes to start a run and to finish it.
    start = time.monotonic()
    proc = subprocess.Popen(_train_cmd(tiny_model_dir, data, ref), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while not (ref / "config.json").is_file() and proc.poll() is None:
        time.sleep(0.05)
    start_up = time.monotonic() - start
    assert proc.wait() == 0
    work = time.monotonic() - start - start_up
    expected = json.loads((ref / "metrics.json").read_text())
    ref_log = (ref / "train_log.jsonl").read_text().splitlines()

    out, rng, kills = tmp_path / "run", random.Random(0), 0
    while kills < 5:
        started = (out / "config.json").is_file()  # else killed before it wrote anything
        cmd = _train_cmd(tiny_model_dir, data, out, resume=started)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(start_up * rng.uniform(0.8, 1.0) + work * rng.uniform(0.0, 0.15))
        if proc.poll() is not None:
            break  # finished before the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        # No checkpoint is ever a half-written one: the task's, nor those of the pre-training
        # phase that a K = 4 run starts with (most early kills land there).
        ckpts = [*out.glob("checkpoints/step-*"), *out.glob("pretrain/checkpoints/step-*")]
        for c in ckpts:
            assert (c / "state.json").is_file() and (c / "trainable.safetensors").is_file()
    assert kills == 5, "the run finished too fast to be interrupted five times"
    subprocess.run(_train_cmd(tiny_model_dir, data, out, resume=True), check=True, env=env,
                   capture_output=True)  # fmt: skip
    got = json.loads((out / "metrics.json").read_text())
    assert got["test"] == {**expected["test"], "eval_seconds": got["test"]["eval_seconds"]}
    timing = {k: got["pretrain"][k] for k in ("train_seconds", "wall_seconds")}
    assert got["pretrain"] == {**expected["pretrain"], **timing}
    losses = [
        json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()
    ]
    assert losses == [json.loads(line)["loss"] for line in ref_log]


def test_ctrl_c_says_how_to_resume(tiny_model_dir, data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(tiny_model_dir, data, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "config.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert f"`ktm train --resume --out {out}` continues it" in err
