"""One writer per run folder: a lock file holding the writer's PID, host and command.

Two ``ktm train --out RUN`` started together would otherwise both run and leave one run's
config beside the other's metrics. The lock is taken before the run writes anything and
released when it finishes or its process exits; a lock whose process is gone (killed,
crashed) is stale and taken over, so an interrupted run still resumes.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
from pathlib import Path

from ..errors import KTMError

LOCK_NAME = ".ktm-lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class RunLock:
    """The claim of this process on ``folder`` (see the module doc)."""

    def __init__(self, folder: Path, command: str) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.command = command
        self.held = False

    def holder(self) -> dict | None:
        """What the lock file says of its holder (``None`` when there is no lock)."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written this instant, or damaged: treat as held, unknown

    def _stale(self, holder: dict) -> bool:
        if not holder:  # unreadable: stale only once it is old enough not to be mid-write
            try:
                return time.time() - self.path.stat().st_mtime > 10
            except FileNotFoundError:
                return True
        same_host = holder.get("host") == socket.gethostname()
        pid = holder.get("pid")
        if not (same_host and isinstance(pid, int)):
            return False
        # this very process left it (a run that failed in-process, then started again)
        return pid == os.getpid() or not _alive(pid)

    def acquire(self) -> None:
        """Take the lock, or raise a :class:`KTMError` naming the process that holds it."""
        if self.held:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is not None and not self._stale(holder):
                    raise KTMError(
                        f"{self.path.parent} is being written by `ktm {holder.get('command', '?')}`"
                        f" (PID {holder.get('pid', '?')} on {holder.get('host', '?')}, since "
                        f"{holder.get('since', '?')}); wait for it to finish or choose another "
                        f"--out"
                    ) from None
                self.path.unlink(missing_ok=True)  # the holder is gone: take over
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            self.held = True
            atexit.register(self.release)
            return
        raise KTMError(f"could not lock {self.path.parent}; try again")  # pragma: no cover

    def release(self) -> None:
        """Give the lock up (only if this process holds it)."""
        if self.held:
            self.held = False
            holder = self.holder()
            if holder and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
