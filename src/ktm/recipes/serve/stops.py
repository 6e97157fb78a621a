"""Stop sequences (the API's ``stop``): where generated text ends, and how much of a stream is
safe to send while a stop sequence might still be forming."""

from __future__ import annotations

from collections.abc import Sequence


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the first stop sequence in ``text`` begins, or ``None``."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def safe_length(text: str, stops: Sequence[str]) -> int:
    """How much of ``text`` can be sent: all but a tail that could begin a stop sequence."""
    longest = max((len(s) for s in stops), default=0)
    for k in range(min(len(text), longest - 1), 0, -1):
        if any(s.startswith(text[-k:]) for s in stops):
            return len(text) - k
    return len(text)
