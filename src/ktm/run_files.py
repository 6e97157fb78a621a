"""A run's folder: its ``config.json`` is written before it starts and checked on resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import DTYPES, KTMConfig, dataclass_from_dict
from .distributed import process_state
from .errors import KTMError
from .io_utils import read_json, write_json_atomic
from .training import TrainConfig


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise KTMError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def run_dict(cfg) -> dict:
    """A run config as written to ``config.json``; display-only options left out."""
    d = dataclasses.asdict(cfg)
    d["train"].pop("progress", None)
    return d


def run_from_dict(cls, d: dict, **parts: type):
    """A run config from its ``config.json`` dict: ``model``, ``ktm``, ``train`` and the
    nested dataclasses named in ``parts`` are rebuilt, the rest passed as they are."""
    d = dict(d)
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


def read_run_config(out: Path, cls, what: str):
    """The options the run in ``out`` was started with, read back through ``cls`` (a run
    config class); a :class:`KTMError` naming ``config.json`` when it is not ``what``'s."""
    saved = Path(out) / "config.json"
    values = read_json(saved, "run config")
    try:
        return cls.from_dict(values)
    except (KTMError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise KTMError(f"{saved} is not the config of {what} ({e})") from None


def check_run_dir(out: Path, config, resume: bool) -> None:
    """A new run needs an unused folder; a resumed one the same options.

    The saved options are read back through ``config``'s class, so a run written before an
    option existed resumes as long as the option keeps its default.
    """
    saved = out / "config.json"
    if saved.is_file():
        if not resume:
            raise KTMError(f"{out} already holds a run; pass --resume or choose another --out")
        try:
            before = read_run_config(out, type(config), "this kind of run").to_dict()
        except KTMError:
            before = None
        if before != config.to_dict():
            raise KTMError(f"{saved} was written with other options; resume with the same ones")
    elif resume and (out / "checkpoints").exists():
        raise KTMError(f"{out} has checkpoints but no config.json; cannot resume")


def write_run_config(out: Path, config: dict):
    """Main process writes ``config.json`` once every process has checked the folder."""
    state = process_state()
    state.wait_for_everyone()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", config)
    state.wait_for_everyone()
    return state
