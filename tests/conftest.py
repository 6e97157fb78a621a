"""Fixtures: a tiny random Llama (hidden 64, 2 layers) with the real SmolLM2 tokenizer."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny test models live in the temporary folder: let saved folders name them as their base
os.environ.setdefault("KTM_MODEL_ROOTS", tempfile.gettempdir())

SCRIPTS = Path(__file__).parent.parent / "scripts"


@pytest.fixture
def script():
    """Load ``scripts/NAME.py`` as a module: ``script("prompt_reconstruction").repeated(...)``."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny model folder: random weights, real tokenizer (no download)."""
    from transformers import AutoTokenizer

    from ktm.model.base_models import _GGUF_NAME, _gguf_path

    folder = tmp_path_factory.mktemp("tiny-llama")
    gguf = _gguf_path()
    assert gguf.name == _GGUF_NAME
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    model = _llama(tokenizer, hidden=64, heads=4, kv_heads=2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    """The real SmolLM2 tokenizer (from the tiny model's folder)."""
    from ktm.model.base_models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def tiny_base(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load():
        return (
            AutoModelForCausalLM.from_pretrained(tiny_model_dir),
            AutoTokenizer.from_pretrained(tiny_model_dir),
        )

    return load


@pytest.fixture
def make_model(tiny_model_dir):
    """Build a KTMModel on the tiny base: make_model(k=4, merger="mlp", ...)."""
    from ktm import KTMConfig, KTMModel

    def make(seed: int = 0, **cfg):
        torch.manual_seed(seed)
        return KTMModel.from_base(str(tiny_model_dir), KTMConfig(**cfg))

    return make


@pytest.fixture
def other_shape_base(tiny_model_dir):
    """A base model of another shape (hidden 32) with the same tokenizer: (model, tokenizer)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    return _llama(tok, hidden=32, heads=2, kv_heads=2), tok


def _llama(tokenizer, hidden: int, heads: int, kv_heads: int):
    """A random 2-layer Llama with ``tokenizer``'s vocabulary and special tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=2,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            max_position_embeddings=512,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


@pytest.fixture
def train_on_trees(tiny_model_dir, tmp_path):
    """`ktm train` with the tiny model on a few generated `small` trees:
    ``train_on_trees("--k", "4", "--steps", "2")`` → the run folder (the data: ``.data``)."""
    from ktm.cli import main

    data = tmp_path / "trees"
    assert main(["data", "tree", "--train-trees", "16", "--test-trees", "2",
                 "--out", str(data)]) == 0  # fmt: skip

    def run(*options: str, out: str = "run") -> Path:
        folder = tmp_path / out
        assert main(["train", "--model", str(tiny_model_dir), "--data", str(data),
                     "--batch-size", "2", "--no-progress", "--out", str(folder),
                     *options]) == 0  # fmt: skip
        return folder

    run.data = data
    return run


@pytest.fixture
def model_invariants(tmp_path):
    """check(model, prompts): outputs do not depend on the batch, cached generation equals
    recompute, and a save/load round trip gives the same logits; returns the loaded model."""
    from ktm import KTMModel

    def check(model, prompts):
        together = model.next_token_logits(prompts)
        for i, p in enumerate(prompts):
            torch.testing.assert_close(model.next_token_logits([p])[0], together[i], atol=1e-4,
                                       rtol=1e-4)  # fmt: skip
        ids = model.tokenize(prompts[:1], special=True)[0]
        cached = model.generate_ids(model.compress_ids([ids]), None)[0][:4]
        again: list[int] = []
        with torch.no_grad():
            for _ in range(len(cached)):
                hidden, _ = model.hidden_states(model.compress_ids([ids], [again]))
                again.append(int(model.head(hidden[:, -1]).argmax(-1)))
        assert again == cached
        model.save_pretrained(tmp_path / "round-trip")
        back = KTMModel.from_pretrained(tmp_path / "round-trip")
        torch.testing.assert_close(back.next_token_logits(prompts), together)
        return back

    return check


@pytest.fixture
def few_steps():
    """run(model, prompt_ids, answer_ids, suffix_ids=None) -> (first, last) summed answer
    loss over 8 AdamW steps at lr 1e-2 on the trainable parameters."""

    def run(model, ids, answers, suffix_ids=None, steps: int = 8):
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        losses = []
        for _ in range(steps):
            loss = model.answer_nll(ids, answers, suffix_ids)
            losses.append(float(loss.detach()))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return losses[0], float(model.answer_nll(ids, answers, suffix_ids).detach())

    return run
