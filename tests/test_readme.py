"""The README's and the user guide's examples run as written, each on its own (on the real
default model), and the README's run in under a minute."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT_S = 60


def _blocks(page: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / page).read_text(), flags=re.S)


def _python(code: str, cwd: Path) -> float:
    """Run one Python block in a fresh interpreter (nothing from the blocks before it)."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return time.monotonic() - t0


def _bash(page: str, start: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run the bash block of ``page`` that starts with ``start``; it must succeed."""
    script = [b for b in _blocks(page, "bash") if b.lstrip().startswith(start)][0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, time.monotonic() - t0


@pytest.mark.slow
def test_readme_python_example_runs_alone(tmp_path):
    (code,) = _blocks("README.md", "python")
    seconds = _python(code, tmp_path)
    assert (tmp_path / "out" / "my-ktm" / "ktm_config.json").is_file()
    assert seconds < README_LIMIT_S, f"the README's Python example took {seconds:.0f} s"


@pytest.mark.slow
def test_readme_cli_example_runs(tmp_path):
    proc, seconds = _bash("README.md", "ktm data", tmp_path)
    assert "balanced acc" in proc.stdout and '"tokens_in": 26' in proc.stdout
    assert (tmp_path / "runs" / "readme-k4" / "metrics.json").is_file()
    assert seconds < README_LIMIT_S, f"the README's CLI example took {seconds:.0f} s"


@pytest.mark.slow
def test_quickstart_python_example_runs_alone(tmp_path):
    (code,) = _blocks("docs/quickstart.md", "python")
    _python(code, tmp_path)
    assert (tmp_path / "out" / "run" / "model" / "merger.safetensors").is_file()


@pytest.mark.slow
def test_own_data_examples_run(tmp_path):
    proc, _ = _bash("docs/own-data.md", "cat > reviews.csv", tmp_path)
    assert (tmp_path / "runs" / "own" / "model" / "ktm_config.json").is_file()
    assert (tmp_path / "runs" / "own-bench" / "pareto.png").is_file()
    assert "| prune4 |" in proc.stdout


def test_readme_demo_table_is_what_the_demo_printed():
    """The README's demo table is the table `make demo`'s bench printed for the committed raw
    results (docs/results/demo.json), formatted by the same code."""
    import json

    from ktm.recipes.bench.arms import CLASSIFICATION_COLUMNS, COST_COLUMNS
    from ktm.recipes.report import format_table

    rows = json.loads((ROOT / "docs" / "results" / "demo.json").read_text())["arms"]
    table = format_table(rows, CLASSIFICATION_COLUMNS + COST_COLUMNS)
    assert table in (ROOT / "README.md").read_text()
    make = (ROOT / "Makefile").read_text()
    demo = json.loads((ROOT / "docs" / "results" / "demo.json").read_text())["config"]
    arms = ",".join(row["arm"] for row in rows)
    assert f"--steps {demo['train']['steps']}" in make and f"--arms {arms}" in make
