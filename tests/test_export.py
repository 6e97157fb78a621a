"""Export for vLLM (LoRA merged, merger beside) and the prompt-embeds payload."""

import pytest
import torch

from ktm.errors import KTMError
from ktm.recipes.export import export_merged, load_exported
from ktm.recipes.vllm import (
    completions_request,
    decode_prompt_embeds,
    embeds_prompts,
    encode_prompt_embeds,
    prompt_embeds,
)

PROMPTS = ["Tree: +AB\n++CD, Answer: ", "a somewhat longer prompt that spans several blocks"]


def _trained_like(make_model):
    model = make_model(k=4, merger_init="random", lora_r=4)
    with torch.no_grad():  # non-zero LoRA B so that merging changes the weights
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model


def test_export_gives_the_same_logits(make_model, tmp_path):
    model = _trained_like(make_model)
    model.save_pretrained(tmp_path / "m")
    out = export_merged(tmp_path / "m", tmp_path / "export")
    assert (out / "config.json").is_file() and (out / "ktm" / "merger.safetensors").is_file()
    assert not (out / "adapter").exists()
    exported = load_exported(out)
    assert not any("lora" in n for n, _ in exported.named_parameters())
    torch.testing.assert_close(
        exported.next_token_logits(PROMPTS), model.next_token_logits(PROMPTS), atol=1e-4, rtol=1e-4
    )
    # The input embeddings (read by the merger) are untouched by merging the output layer.
    torch.testing.assert_close(
        exported.causal_lm.get_input_embeddings().weight,
        model.causal_lm.get_input_embeddings().weight,
    )
    with pytest.raises(KTMError, match="not empty"):
        export_merged(tmp_path / "m", out)


def test_prompt_embeds_payload_round_trip(make_model):
    model = make_model(k=4)
    embeds = prompt_embeds(model, PROMPTS)
    batch = model.compress(PROMPTS)
    assert [e.shape[0] for e in embeds] == batch.tokens_out
    assert all(e.shape[1] == model.merger.hidden_size and e.dtype == torch.float32 for e in embeds)
    for e in embeds:
        back = decode_prompt_embeds(encode_prompt_embeds(e))
        assert back.dtype == e.dtype and torch.equal(back, e)
    bodies = completions_request(model, PROMPTS, "ktm-export", max_tokens=4)
    assert bodies[0]["model"] == "ktm-export" and bodies[0]["max_tokens"] == 4
    assert torch.equal(decode_prompt_embeds(bodies[1]["prompt_embeds"]), embeds[1])
    assert torch.equal(embeds_prompts(model, PROMPTS)[0]["prompt_embeds"], embeds[0])


def test_payload_rejects_bad_input():
    with pytest.raises(KTMError, match=r"\(N, d\)"):
        encode_prompt_embeds(torch.zeros(1, 2, 3))
    with pytest.raises(KTMError, match="base64"):
        decode_prompt_embeds("not base64 at all!")


def test_vllm_engine_reads_the_export(make_model, tmp_path):
    vllm = pytest.importorskip("vllm")
    model = _trained_like(make_model)
    model.save_pretrained(tmp_path / "m")
    out = export_merged(tmp_path / "m", tmp_path / "export")
    llm = vllm.LLM(model=str(out), enable_prompt_embeds=True, enforce_eager=True)
    params = vllm.SamplingParams(max_tokens=3, temperature=0.0)
    got = [o.outputs[0].text for o in llm.generate(embeds_prompts(model, PROMPTS), params)]
    assert got == model.generate(PROMPTS, max_new_tokens=3)


def test_cli_export(make_model, tmp_path):
    from ktm.cli import main

    make_model(k=2).save_pretrained(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "ktm" / "export.json").is_file()
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "f")]) == 2
    assert not (tmp_path / "f").exists()


def test_spread_positions_are_not_exported_for_vllm(make_model, tmp_path):
    model = make_model(k=4, positions="spread")
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(KTMError, match="positions='spread'.*ktm serve"):
        export_merged(tmp_path / "m", tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with pytest.raises(KTMError, match="ktm serve"):
        prompt_embeds(model, PROMPTS)


def test_payload_carries_the_selectively_expanded_embeddings(make_model):
    model = make_model(k=4)
    model.fit_token_idf(PROMPTS)  # the default scorer's table, as ktm train fits it
    batch = model.compress(PROMPTS, budget=0.5)
    embeds = prompt_embeds(model, PROMPTS, budget=0.5)
    assert [e.shape[0] for e in embeds] == batch.tokens_out
    assert batch.tokens_out != model.compress(PROMPTS).tokens_out
    mask = batch.attention_mask.bool()
    for i, e in enumerate(embeds):
        assert torch.equal(e, batch.embeds[i][mask[i]])
    bodies = completions_request(model, PROMPTS, "ktm-export", budget_positions=12, max_tokens=4)
    assert "budget_positions" not in bodies[0]
    exact = model.compress(PROMPTS, budget_positions=12)
    assert decode_prompt_embeds(bodies[0]["prompt_embeds"]).shape[0] == exact.tokens_out[0]
    assert embeds_prompts(model, PROMPTS, budget=0.5)[1]["prompt_embeds"].shape[0] == len(embeds[1])
