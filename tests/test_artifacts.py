"""Broken artifacts: every saved file truncated, garbled or missing gives a clear KTMError
that names the file — never a traceback from deep inside a library, never wrong weights."""

import shutil

import pytest
import torch

from ktm import KTMConfig, KTMError, KTMModel
from ktm.training import Example, TrainConfig, train

FILES = ["ktm_config.json", "merger.safetensors", "adapter/adapter_model.safetensors",
         "adapter/adapter_config.json"]  # fmt: skip


@pytest.fixture(scope="module")
def saved(tiny_model_dir, tmp_path_factory):
    torch.manual_seed(0)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4, merger_init="random"))
    folder = tmp_path_factory.mktemp("saved") / "m"
    model.save_pretrained(folder)
    return folder


def _break(path, how):
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00\xffnot what you think" * 7)
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["missing", "truncated", "garbage", "empty"])
@pytest.mark.parametrize("name", FILES)
def test_broken_model_file_is_a_clear_error(saved, tmp_path, name, how):
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    _break(folder / name, how)
    with pytest.raises(KTMError) as err:
        KTMModel.from_pretrained(folder)
    assert name.split("/")[-1] in str(err.value) or "adapter" in str(err.value)


def test_weights_load_without_pickle(saved):
    # Only safetensors and JSON in a saved model: nothing that unpickles code.
    suffixes = {p.suffix for p in saved.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors", ".md"}, suffixes


@pytest.mark.parametrize("name", ["trainable.safetensors", "optimizer.pt", "state.json"])
def test_broken_training_checkpoint_is_a_clear_error(tiny_model_dir, tmp_path, name):
    examples = [Example(f"item {i} " * 3, "yes" if i % 2 else "no") for i in range(8)]
    cfg = TrainConfig(steps=2, batch_size=2, save_every=1, progress=False)
    torch.manual_seed(0)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=2))
    train(model, examples, cfg, tmp_path / "run")
    newest = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[-1]
    _break(newest / name, "garbage")
    torch.manual_seed(0)
    fresh = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=2))
    with pytest.raises(KTMError) as err:
        train(fresh, examples, TrainConfig(steps=3, batch_size=2, progress=False), tmp_path / "run",
              resume=True)  # fmt: skip
    assert name in str(err.value)
