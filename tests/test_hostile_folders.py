"""Model folders that cannot blow up memory or pull in what they should not: every config
field is checked before anything is allocated, the weights against the config before the
merger is built, and the base model and links a folder names against what ktm trusts."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from ktm import KTMConfig, KTMModel
from ktm.errors import KTMError


@pytest.fixture(scope="module")
def saved(tiny_model_dir, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("saved") / "model"
    KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4)).save_pretrained(folder)
    return folder


def _copy(saved, tmp_path, config: dict | None = None):
    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    if config:
        meta = json.loads((folder / "ktm_config.json").read_text())
        meta["config"].update(config)
        (folder / "ktm_config.json").write_text(json.dumps(meta))
    return folder


PEAK = """
import resource, sys
from ktm import KTMModel
from ktm.errors import KTMError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    KTMModel.from_pretrained(sys.argv[1])
    print("LOADED")
except KTMError as e:
    print("REFUSED", e)
print("GROWTH_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.parametrize(
    "field, message",
    [
        ({"k": 10**9}, "k must be an integer in [1, 1024]"),
        ({"merger_hidden_factor": 1e6}, "merger_hidden_factor must be in (0, 64.0]"),
        ({"merger_hidden_factor": 40}, "merger weight mlp.0"),
        ({"merger_context": 10**7}, "merger_context must be an integer in [0, 4096]"),
        ({"merger_context": 64}, "merger weight mlp.0.weight"),
        ({"lora_r": 4}, "LoRA rank 8 but ktm_config.json says lora_r=4"),
        ({"lora_dropout": "x"}, "lora_dropout must be a finite number"),
    ],
)
def test_hostile_config_fields_are_refused_before_allocation(saved, tmp_path, field, message):
    folder = _copy(saved, tmp_path, field)
    proc = subprocess.run([sys.executable, "-c", PEAK, str(folder)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert "REFUSED" in proc.stdout and message in proc.stdout, proc.stdout + proc.stderr
    growth_mb = int(proc.stdout.split("GROWTH_KB")[1]) / 1024
    assert growth_mb < 300, f"memory grew {growth_mb:.0f} MB before the refusal"


def test_non_finite_and_integer_weights_are_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    state = load_file(str(folder / "merger.safetensors"))
    key = next(iter(state))
    nan = {**state, key: torch.full_like(state[key], float("nan"))}
    save_file(nan, str(folder / "merger.safetensors"))
    with pytest.raises(KTMError, match="non-finite values"):
        KTMModel.from_pretrained(folder)
    ints = {k: (v * 100).to(torch.int8) for k, v in state.items()}
    save_file(ints, str(folder / "merger.safetensors"))
    with pytest.raises(KTMError, match="is I8, not a float type"):
        KTMModel.from_pretrained(folder)


def test_a_base_model_outside_the_trusted_folders_needs_approval(
    saved, tmp_path, monkeypatch, tiny_model_dir
):
    folder = _copy(saved, tmp_path)
    monkeypatch.setenv("KTM_MODEL_ROOTS", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path / "model")
    with pytest.raises(KTMError, match="outside the ones ktm trusts.*--base-model"):
        KTMModel.from_pretrained(folder)
    model = KTMModel.from_pretrained(folder, base_model=str(tiny_model_dir))  # approved
    assert model.k == 4
    meta = json.loads((folder / "ktm_config.json").read_text())
    for hostile in ("/etc", "../../..", "someone/some-model"):
        (folder / "ktm_config.json").write_text(json.dumps({**meta, "base_model": hostile}))
        with pytest.raises(KTMError, match="--base-model"):
            KTMModel.from_pretrained(folder)


def test_links_out_of_the_folder_are_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(folder / "merger.safetensors", outside)
    os.symlink(outside, folder / "merger.safetensors")
    with pytest.raises(KTMError, match="links outside the model folder"):
        KTMModel.from_pretrained(folder)


def test_a_deeply_nested_config_is_one_clear_error(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    (folder / "ktm_config.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(KTMError, match="nested too deeply"):
        KTMModel.from_pretrained(folder)
