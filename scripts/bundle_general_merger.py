"""Turn a finished general pre-training (``ktm pretrain --corpus general``) into a general
merger ktm ships: its merger and LoRA weights in bfloat16 (half the size; task runs train them
on in float32), under ``src/ktm/pretrained/NAME/``, with the run's provenance beside it.

    python scripts/bundle_general_merger.py runs/general-k4 smollm2-135m-k4

The run's model folder (``RUN/model``) or a checkpoint (``RUN/checkpoints/step-N``) is read;
the bundle's size is printed (the package keeps each under 25 MB).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ktm.io_utils import read_json
from ktm.model import KTMModel
from ktm.recipes.general_merger import BUNDLED
from ktm.recipes.start import init_from, model_folder

LIMIT_MB = 25


def to_bf16(path: Path) -> None:
    state = load_file(path)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in state.items()}, path)


def _run_of(source: Path) -> tuple[Path, int | None]:
    """The run folder of a run or checkpoint path, and the checkpoint's step (None: the end)."""
    if "checkpoints" in source.parts:
        return source.parent.parent, int(source.name.split("-")[-1])
    return (source.parent if source.name == "model" else source), None


def _started_from(cfg: dict) -> str | None:
    return cfg.get("init_from") or cfg.get("init_lora_from")


def earlier_stages(cfg: dict) -> list[dict]:
    """The pre-trainings this one started from (``init_from`` or ``init_lora_from``, followed
    back), oldest last: each with its source, the step it was taken at and its run config (None
    when unreadable). A bundle met on the way ends the chain with its own provenance."""
    stages, source = [], _started_from(cfg)
    while source and len(stages) < 10:
        bundle = Path(source) / "provenance.json"
        if bundle.is_file():
            stages.append({"source": source, "provenance": read_json(bundle, "provenance")})
            break
        run, step = _run_of(Path(source))
        saved = run / "config.json"
        config = read_json(saved, "run config") if saved.is_file() else None
        stages.append({"source": source, "step": step, "config": config})
        source = _started_from(config) if config else None
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the pre-training run folder, or one of its checkpoints")
    parser.add_argument("name", help="the bundle's folder name, e.g. smollm2-135m-k4")
    parser.add_argument("--into", default=str(BUNDLED), help="folder of bundles")
    args = parser.parse_args()
    source = Path(args.source)
    checkpoint = source if "checkpoints" in source.parts else None
    run, step = _run_of(source)
    cfg = read_json(run / "config.json", "run config")
    from ktm.config import KTMConfig

    model = KTMModel.from_base(cfg["model"], KTMConfig.from_dict(cfg["ktm"]))
    init_from(model, checkpoint or model_folder(run))
    out = Path(args.into) / args.name
    stages = earlier_stages(cfg)  # before the old bundle goes: it may be the one started from
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    for f in out.rglob("*.safetensors"):
        to_bf16(f)
    # no path of this machine in the package: peft's card and the adapter's base model path
    (out / "adapter" / "README.md").unlink(missing_ok=True)
    adapter = out / "adapter" / "adapter_config.json"
    if adapter.is_file():
        meta = json.loads(adapter.read_text())
        meta["base_model_name_or_path"] = cfg["model"]
        adapter.write_text(json.dumps(meta, indent=2) + "\n")
    metrics = run / "metrics.json"
    provenance = {
        "source": str(source),
        "steps": step if step is not None else cfg["train"]["steps"],
        "pretrain_config": cfg,
        "started_from": stages,
        "metrics": read_json(metrics, "metrics") if metrics.is_file() else None,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"{out}: {size:.1f} MB" + (f" — over the {LIMIT_MB} MB limit" if size > LIMIT_MB else ""))


if __name__ == "__main__":
    main()
