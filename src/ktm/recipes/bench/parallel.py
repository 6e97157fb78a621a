"""Train a bench's arms in several worker processes at once.

On a CPU, one small model trains faster per core with one thread per process than with every
core in one process (a batch of short prompts keeps few threads busy), so ``ktm bench
--jobs N`` trains N arms at a time, each with ``threads // N`` threads. Each arm writes its
own run folder, so an interrupted bench resumes every arm where it stopped; the parent then
evaluates and times the arms one at a time, alone on the machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...errors import KTMError
from ..run_config import RunConfig
from ..run_folder import RunFolder


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train_arm(name: str, cfg: RunConfig, folder: Path, resume: bool) -> str:
    from ..train import run_training

    run_training(cfg, folder, resume=resume, progress=False)
    return name


def worker_threads(jobs: int) -> int:
    """Torch threads per worker: this process's threads shared among ``jobs``, at least 1."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


def train_arms_in_parallel(configs: Mapping[str, RunConfig], out: Path, jobs: int) -> list[str]:
    """Train every arm of ``configs`` (name → its run config) whose folder ``out/<name>`` has
    no finished run, ``jobs`` at a time; returns the names trained. An arm that fails stops
    the bench with its error once the running arms are done."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    folders = {name: RunFolder(out / name, "train") for name in configs}
    todo = {name: f for name, f in folders.items() if not f.finished}
    if not todo:
        return []
    threads = worker_threads(jobs)
    print(
        f"ktm: training {len(todo)} arms, {jobs} at a time ({threads} threads each): "
        + ", ".join(todo),
        flush=True,
    )
    errors: list[str] = []
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(todo)),
        mp_context=get_context("spawn"),  # no fork of a process holding torch threads
        initializer=_init_worker,
        initargs=(threads,),
    ) as pool:
        futures = {
            pool.submit(_train_arm, name, configs[name], folder.path, folder.started_before): name
            for name, folder in todo.items()
        }
        for future in as_completed(futures):
            name = futures[future]
            try:
                future.result()
                print(f"ktm: arm {name}: trained", flush=True)
            except Exception as e:  # noqa: BLE001 - reported together below
                errors.append(f"{name}: {e}")
    if errors:
        raise KTMError("arms failed (the others are saved; rerun to resume):\n" + "\n".join(errors))
    return list(todo)
