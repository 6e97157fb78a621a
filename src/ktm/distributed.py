"""Process-group helpers over Accelerate that also work on CPU-only machines.

Accelerate treats several processes as one job on CPU only when told ``cpu=True``;
ktm says so whenever no GPU is present, so ``accelerate launch --multi_gpu
--num_processes 2`` (or ``torchrun``) on a CPU machine trains one job over gloo.
"""

from __future__ import annotations

import torch


def _cpu_only() -> bool:
    return not torch.cuda.is_available() and not (
        hasattr(torch, "xpu") and torch.xpu.is_available()
    )


def process_state():
    """The shared :class:`accelerate.PartialState` (rank, world size, barriers)."""
    from accelerate import PartialState

    return PartialState(cpu=_cpu_only())


def make_accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=_cpu_only())
