"""ktm on other decoder families than Llama, each a tiny random model with the real tokenizer.

Each family differs where ktm touches the model: GPT-2 (Conv1D layers, learned absolute
positions), OPT (positions offset by 2, a separate decoder wrapper), BLOOM (ALiBi instead of
position ids), GPT-NeoX (one fused QKV layer, parallel residual), Qwen2 (biased QKV), Phi-3
(fused QKV and gate-up), Gemma 3 (embeddings scaled inside the embedding layer, sliding-window
layers), Falcon (multi-query attention).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers as T

from ktm import KTMConfig, KTMError, KTMModel, SamplingConfig
from ktm.cli import main
from ktm.recipes.export import export_merged, load_exported
from ktm.training import Example, TrainConfig, train
from test_model import PROMPTS, _naive_greedy

_SMALL = dict(num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=512)
_GQA = dict(hidden_size=64, intermediate_size=128, num_key_value_heads=2, **_SMALL)
FAMILIES = {
    "gpt2": lambda ids: T.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=512, **ids),
    "opt": lambda ids: T.OPTConfig(
        hidden_size=64, ffn_dim=128, word_embed_proj_dim=64, **_SMALL, **ids
    ),
    "bloom": lambda ids: T.BloomConfig(hidden_size=64, n_layer=2, n_head=4, **ids),
    "gpt_neox": lambda ids: T.GPTNeoXConfig(hidden_size=64, intermediate_size=128, **_SMALL, **ids),
    "qwen2": lambda ids: T.Qwen2Config(**_GQA, **ids),
    "phi3": lambda ids: T.Phi3Config(**_GQA, **ids),
    "gemma3_text": lambda ids: T.Gemma3TextConfig(**_GQA, head_dim=16, sliding_window=8, **ids),
    "falcon": lambda ids: T.FalconConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, multi_query=True, **ids
    ),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_dir(request, tmp_path_factory, tokenizer) -> Path:
    """A saved tiny model of one family, with the SmolLM2 tokenizer's vocabulary."""
    ids = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = T.AutoModelForCausalLM.from_config(FAMILIES[request.param](ids))
    assert model.config.model_type == request.param
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _ktm(folder: Path, k: int, trained_like: bool = True) -> KTMModel:
    torch.manual_seed(0)
    model = KTMModel.from_base(str(folder), KTMConfig(k=k, merger_init="random"))
    if trained_like:  # a non-zero LoRA, so that it and its merging are really tested
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
    return model


def test_k1_without_training_is_the_base_model(family_dir):
    model = _ktm(family_dir, k=1, trained_like=False)
    base = T.AutoModelForCausalLM.from_pretrained(family_dir)
    ids = model.tokenizer(PROMPTS[:1], return_tensors="pt")
    with torch.no_grad():
        ref = base(**ids).logits[:, -1]
    torch.testing.assert_close(model.next_token_logits(PROMPTS[:1]), ref, atol=1e-5, rtol=1e-5)


def test_k4_is_batch_invariant_and_its_cache_exact(family_dir):
    model = _ktm(family_dir, k=4)
    alone = torch.cat([model.next_token_logits([p]) for p in PROMPTS])
    together = model.next_token_logits(PROMPTS)
    assert (alone - together).abs().max() < 1e-4
    for prompt in PROMPTS:
        cached = model.generate_ids(model.compress([prompt]), SamplingConfig(max_new_tokens=6))
        assert cached[0] == _naive_greedy(model, prompt, 6)


def test_save_load_and_vllm_export_keep_the_logits(family_dir, tmp_path):
    model = _ktm(family_dir, k=4)
    before = model.next_token_logits(PROMPTS)
    model.save_pretrained(tmp_path / "m")
    assert torch.equal(KTMModel.from_pretrained(tmp_path / "m").next_token_logits(PROMPTS), before)
    exported = load_exported(export_merged(tmp_path / "m", tmp_path / "export"))
    torch.testing.assert_close(exported.next_token_logits(PROMPTS), before, atol=1e-4, rtol=1e-4)


def test_training_lowers_the_loss(family_dir, tmp_path):
    examples = [Example(f"Item {i}: " + "word " * (i % 7 + 1), "ab"[i % 2]) for i in range(24)]
    cfg = TrainConfig(steps=12, batch_size=4, lr=2e-2, warmup_steps=1, save_every=0, progress=False)
    losses = [r["loss"] for r in train(_ktm(family_dir, k=4), examples, cfg, tmp_path).history]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5


def test_spread_positions_are_refused_where_the_model_reads_none(tokenizer, tmp_path):
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    T.AutoModelForCausalLM.from_config(FAMILIES["bloom"](ids)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(KTMError, match="positions='spread'.*'bloom'.*ALiBi.*compact"):
        KTMModel.from_base(str(tmp_path), KTMConfig(k=4, positions="spread"))


def test_a_model_that_is_not_a_causal_lm_is_refused_in_one_line(tokenizer, tmp_path, capsys):
    t5 = T.T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, num_layers=1, num_heads=2)
    T.T5ForConditionalGeneration(t5).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    args = ["train", "--model", str(tmp_path / "t5"), "--task", "tree", "--k", "4"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "(T5Config) is not a causal LM" in err
    assert not (tmp_path / "run" / "model").exists()
