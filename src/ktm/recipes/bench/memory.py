"""Memory a benchmark used: resident memory now, its peak so far, and the peak while a block
of code runs."""

from __future__ import annotations

import os
import threading


def current_rss_bytes() -> int | None:
    """Resident memory of this process now (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every ``interval`` seconds by a
    background thread while the block runs (``peak_bytes``; ``None`` where RSS is unknown).

    Activations are freed as soon as a forward pass ends, so the process-wide peak (which never
    goes down) cannot tell one arm's need from another's; sampling can.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak_bytes: int | None = None

    def __enter__(self) -> PeakMemory:
        self._start = current_rss_bytes()
        self._peak = self._start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = current_rss_bytes()
            if now is not None and self._peak is not None:
                self._peak = max(self._peak, now)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        now = current_rss_bytes()
        if self._start is not None and now is not None:
            self.peak_bytes = max(self._peak, now) - self._start


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
