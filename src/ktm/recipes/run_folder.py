"""A run's folder: the one place that knows how a run lives on disk.

A run folder holds ``config.json`` (the resolved options, written before any work, tagged with
the command that wrote it), the run's outputs, and ``metrics.json`` once it has finished.
Runs made of parts (the pre-training phase of ``ktm train``, the warm-ups of ``ktm pretrain``,
the arms of ``ktm bench``, the stages of a curriculum) keep each part in a sub-folder that is
a run folder too: finished parts are skipped, started ones resume, new ones start.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import DTYPES, KTMConfig, dataclass_from_dict
from ..distributed import process_state
from ..errors import KTMError
from ..io_utils import read_json, write_json_atomic
from ..training import TrainConfig
from .run_lock import RunLock

RUN_CONFIG = "config.json"
METRICS = "metrics.json"
COMMAND_KEY = "ktm_command"  # which command wrote a config.json (absent before ktm 0.1.1)

__all__ = ["METRICS", "RUN_CONFIG", "OtherCommandRun", "RunFolder", "check_dtype", "read_json"]


class OtherCommandRun(KTMError):
    """The folder holds a run of another ``ktm`` command."""


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise KTMError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def run_dict(cfg) -> dict:
    """A run config as written to ``config.json``; display-only options left out."""
    d = dataclasses.asdict(cfg)
    d["train"].pop("progress", None)
    if getattr(cfg, "data", None) is not None:  # only the fields of the run's own task
        d["data"] = cfg.data.to_dict()
    return d


def run_from_dict(cls, d: dict, **parts: type):
    """A run config from its ``config.json`` dict: ``model``, ``ktm``, ``train`` and the
    nested dataclasses named in ``parts`` are rebuilt, the rest passed as they are."""
    d = dict(d)
    d.pop(COMMAND_KEY, None)  # which command wrote it: checked by RunFolder.read_config
    ktm = dict(d["ktm"])
    if "reduction" in ktm and "reduction" in {f.name for f in dataclasses.fields(cls)}:
        # before ktm 0.1.1 a token-reduction baseline was part of the model's config
        d["reduction"], d["reduction_k"] = ktm.pop("reduction"), ktm.pop("reduction_k", 1)
        d["ktm"] = ktm
    nested = {
        name: dataclass_from_dict(t, d.pop(name), f"{name} config") for name, t in parts.items()
    }
    return cls(
        model=d.pop("model"),
        ktm=KTMConfig.from_dict(d.pop("ktm")),
        train=dataclass_from_dict(TrainConfig, d.pop("train"), "train config"),
        **nested,
        **d,
    )


class RunFolder:
    """The folder of one run of ``command`` (``train``, ``pretrain``, ``bench``, …).

    Owns writing the resolved config, refusing a folder of another command or other options,
    resuming, skipping finished sub-runs, and the metrics file with the run's time.
    """

    def __init__(self, path: str | Path, command: str) -> None:
        self.path = Path(path)
        self.command = command
        self.started = time.perf_counter()
        self.lock = RunLock(self.path, command)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, {self.command!r})"

    @property
    def config_file(self) -> Path:
        return self.path / RUN_CONFIG

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def started_before(self) -> bool:
        """Whether a run was started here (its config is written)."""
        return self.config_file.is_file()

    @property
    def finished(self) -> bool:
        """Whether the run here finished (its metrics are written)."""
        return self.metrics_file.is_file()

    def sub(self, name: str, command: str | None = None) -> RunFolder:
        """The folder of a part of this run."""
        return RunFolder(self.path / name, command or self.command)

    def read_config(self, cls, what: str | None = None):
        """The options the run here was started with, read back through ``cls`` (a run
        config class with ``from_dict``); a :class:`KTMError` naming ``config.json`` when it
        is not a ``ktm {command}`` run."""
        what = what or f"a `ktm {self.command}` run"
        values = read_json(self.config_file, "run config")
        if not isinstance(values, dict):
            raise KTMError(f"{self.config_file} is not the config of {what} (not a JSON object)")
        values = dict(values)
        wrote = values.pop(COMMAND_KEY, self.command)
        if wrote != self.command:
            raise OtherCommandRun(
                f"{self.path} holds a `ktm {wrote}` run, not {what}; choose another --out"
            )
        try:
            return cls.from_dict(values)
        except (KTMError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise KTMError(f"{self.config_file} is not the config of {what} ({e})") from None

    def check(self, config, resume: bool) -> None:
        """A new run needs an unused folder; a resumed one the same options.

        The saved options are read back through ``config``'s class, so a run written before
        an option existed resumes as long as the option keeps its default.
        """
        if self.started_before:
            if not resume:
                raise KTMError(
                    f"{self.path} already holds a run; pass --resume or choose another --out"
                )
            before = self.read_config(type(config)).to_dict()
            if before != config.to_dict():
                raise KTMError(
                    f"{self.config_file} was written with other options; resume with the same "
                    f"ones (or `--resume --out {self.path}` alone)"
                )
        elif resume and (self.path / "checkpoints").exists():
            raise KTMError(f"{self.path} has checkpoints but no {RUN_CONFIG}; cannot resume")

    def start(self, config, resume: bool):
        """Check the folder (see :meth:`check`), then write the resolved ``config`` once every
        process has checked it. Returns the process state (rank, barriers)."""
        self.check(config, resume)
        state = process_state()
        state.wait_for_everyone()
        if state.is_main_process:
            self.lock.acquire()  # one writer at a time: a second one is refused here
            self.check(config, resume)  # what the first writer may have written meanwhile
            self.path.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.config_file, {COMMAND_KEY: self.command, **config.to_dict()})
        state.wait_for_everyone()
        return state

    def read_metrics(self) -> dict:
        return read_json(self.metrics_file, f"metrics of {self.path}")

    def finish(self, metrics: dict) -> dict:
        """Write ``metrics.json`` (main process), after every process got here."""
        state = process_state()
        if state.is_main_process:
            write_json_atomic(self.metrics_file, metrics)
            self.lock.release()
        state.wait_for_everyone()
        return metrics

    def run_part(self, name: str, run: Callable[[RunFolder, bool], Any]) -> tuple[dict, bool]:
        """The metrics of part ``name``: read back if it finished, else ``run(folder,
        resume)`` first (``resume`` when it was started before). Returns (metrics, ran)."""
        part = self.sub(name)
        if part.finished:
            return part.read_metrics(), False
        run(part, part.started_before)
        return part.read_metrics(), True

    def seconds_since_start(self) -> float:
        return time.perf_counter() - self.started
