"""Selective expansion: at a budget of positions, which prompt tokens stay raw.

A prompt of T tokens merged K at a time reads ⌈T/K⌉ positions. With a larger budget, the
tokens a scorer ranks highest are kept as themselves and the runs of tokens between them are
merged K at a time (a block never spans a kept token), so a prompt reads

    (kept tokens) + Σ over the runs between them of ⌈run length / K⌉

positions. Tokens are taken in score order while the layout fits the budget; the first that
does not fit ends the choice, so the kept tokens are always the top of the ranking.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch

from .errors import KTMError

Segment = tuple[int, int, bool]  # [start, end) of a prompt, and whether it is a kept token


def segments(length: int, k: int, raw: Sequence[bool] | None = None) -> list[Segment]:
    """The prompt's layout in order: kept tokens alone, the runs between them in blocks of K."""
    if raw is None:  # every block merged: the common case, without a walk over the tokens
        return [(s, min(s + k, length), False) for s in range(0, length, k)]
    out: list[Segment] = []
    start = 0
    while start < length:
        if raw is not None and raw[start]:
            out.append((start, start + 1, True))
            start += 1
            continue
        end = start
        while end < length and end - start < k and not (raw is not None and raw[end]):
            end += 1
        out.append((start, end, False))
        start = end
    return out


def expanded_length(length: int, k: int, raw: Sequence[bool] | None = None) -> int:
    """Positions a prompt of ``length`` tokens reads with ``raw`` tokens kept."""
    return len(segments(length, k, raw))


def check_share(budget: object) -> None:
    """Refuse a ``budget`` that is not a share of the prompt in (0, 1]."""
    number = isinstance(budget, int | float) and not isinstance(budget, bool)
    if not (number and 0 < budget <= 1):
        raise KTMError(f"budget must be a share of the prompt in (0, 1], got {budget!r}")


def budget_positions(
    length: int, k: int, ratio: float | None = None, positions: int | None = None
) -> int:
    """The positions a prompt may read: ``positions``, or ⌊ratio · T⌋, never below ⌈T/K⌉
    (every block merged) nor above T; ⌈T/K⌉ when neither is given.

    Raises KTMError for a ``positions`` budget under ⌈T/K⌉: the prompt cannot be merged into
    fewer positions than that.
    """
    least = -(-length // k)
    if positions is not None:
        if positions < least:
            raise KTMError(
                f"a budget of {positions} positions is below the {least} a {length}-token "
                f"prompt reads with every block of K = {k} merged; raise the budget"
            )
        return min(positions, length)
    if ratio is not None:
        return min(length, max(least, math.floor(ratio * length)))
    return least


def choose_raw(scores: torch.Tensor, k: int, budget: int) -> list[bool]:
    """Which tokens stay raw: the highest-scoring ones, in score order, while the layout reads
    at most ``budget`` positions.

    Args:
        scores: (T,) float, higher = more worth keeping (ties: the earlier token first).
        k: block size of the merged runs.
        budget: positions the prompt may read (at least ⌈T/K⌉).
    Returns:
        T booleans, True for a kept token.
    """
    t = int(scores.shape[0])
    raw = [False] * t
    cost = -(-t // k)
    if budget < cost:
        raise KTMError(f"budget {budget} is below the {cost} positions of a merged prompt")
    values = scores.tolist()
    order = sorted(range(t), key=lambda i: (-values[i], i))
    kept: list[int] = []  # sorted positions of the kept tokens
    for i in order:
        j = bisect.bisect_left(kept, i)
        a = kept[j - 1] + 1 if j > 0 else 0  # the run of merged tokens holding i: [a, b)
        b = kept[j] if j < len(kept) else t
        change = 1 - _blocks(b - a, k) + _blocks(i - a, k) + _blocks(b - i - 1, k)
        if cost + change > budget:
            break
        cost += change
        kept.insert(j, i)
        raw[i] = True
    return raw


def _blocks(n: int, k: int) -> int:
    return -(-n // k)
