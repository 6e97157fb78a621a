"""Training examples (:class:`ktm.example.Example`) and their deterministic order."""

from __future__ import annotations

import torch

from ..example import Example

__all__ = ["Example", "SampleOrder"]


class SampleOrder:
    """A reproducible stream of example indices: one fresh permutation per epoch.

    The i-th sample of a run is the same whatever the number of processes or where a run
    was resumed, which is what makes resume exact.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=gen).tolist()}
        return self._perms[epoch]

    def take(self, start: int, count: int) -> list[int]:
        """Indices of samples ``start`` … ``start + count - 1`` of the stream."""
        return [self._perm(s // self.n)[s % self.n] for s in range(start, start + count)]
