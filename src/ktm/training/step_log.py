"""Progress a user can follow without a progress bar: ``train_log.jsonl`` grows by one line per
optimizer step as it happens, and (with the bar off) one line goes to stderr every
:data:`PRINT_EVERY_S` seconds."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..io_utils import write_text_atomic

LOG_NAME = "train_log.jsonl"
PRINT_EVERY_S = 30.0


class StepLog:
    """The step records of one training run, appended to ``path`` as steps happen.

    Only the main process (``active``) writes; ``print_lines`` adds the periodic stderr line.
    """

    def __init__(self, path: Path, total_steps: int, active: bool, print_lines: bool) -> None:
        self.path, self.total, self.active, self.print_lines = (
            path,
            total_steps,
            active,
            print_lines,
        )
        self.last_print = time.monotonic()

    def restart(self, history: list[dict]) -> None:
        """Start the file over from ``history`` (empty for a new run; a resumed run's steps
        up to its checkpoint)."""
        if self.active:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in history))

    def add(self, record: dict) -> None:
        if not self.active:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        now = time.monotonic()
        step = record["step"]
        if self.print_lines and (now - self.last_print >= PRINT_EVERY_S or step in (1, self.total)):
            self.last_print = now
            print(
                f"ktm: step {step}/{self.total} loss {record['loss']:.4f} "
                f"({record['prompt_tokens_per_s']:.0f} prompt tokens/s)",
                file=sys.stderr,
                flush=True,
            )
