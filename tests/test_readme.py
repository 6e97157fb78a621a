"""The README's Python and CLI examples run as written (on the real default model)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in _blocks("python"):
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "out" / "my-ktm" / "ktm_config.json").is_file()
    assert (tmp_path / "out" / "run" / "model" / "merger.safetensors").is_file()
    assert isinstance(namespace["texts"][0], str)


def _run_block(start: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the README's bash block that starts with ``start``; it must succeed."""
    script = [b for b in _blocks("bash") if b.lstrip().startswith(start)][0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_cli_examples_run(tmp_path):
    proc = _run_block("ktm data", tmp_path)
    assert "balanced acc" in proc.stdout
    assert (tmp_path / "runs" / "readme-k4" / "metrics.json").is_file()


def test_own_data_examples_run(tmp_path):
    proc = _run_block("cat > reviews.csv", tmp_path)
    assert (tmp_path / "runs" / "readme-own" / "model" / "ktm_config.json").is_file()
    assert (tmp_path / "runs" / "readme-bench" / "pareto.png").is_file()
    assert "| prune4 |" in proc.stdout
