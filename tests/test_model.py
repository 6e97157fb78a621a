"""KTMModel on a tiny random Llama: shapes, invariance, generation, artifacts."""

import pytest
import torch

from ktm import KTMError, KTMModel

PROMPTS = [
    "Tree: +AB\n++CD\n++EF, Task: Parent/Child Relationship, Parent: AB, Child: CD, Answer: ",
    "short",
    "A somewhat longer prompt whose length is not a multiple of any block size at all, surely.",
]


def test_compress_shapes_and_masks(make_model):
    model = make_model(k=4)
    ids, _ = model.encode_prompts(PROMPTS)
    batch = model.compress(PROMPTS, suffixes=["Q1", "", "Question two?"])
    lens = [len(i) for i in ids]
    suffix = [len(s) for s in model.tokenize(["Q1", "", "Question two?"])]
    expected = [-(-t // 4) + s for t, s in zip(lens, suffix)]
    assert batch.tokens_out == expected
    assert batch.tokens_in == [t + s for t, s in zip(lens, suffix)]
    assert batch.embeds.shape == (3, max(expected), 64)
    assert batch.attention_mask.sum(dim=1).tolist() == expected
    # left padding: zeros first, then ones
    for row, n in zip(batch.attention_mask.tolist(), expected):
        assert row == [0] * (len(row) - n) + [1] * n
    assert batch.compression > 0.5


def test_k1_equals_base_model_logits(make_model, tiny_base):
    model = make_model(k=1)
    base, tok = tiny_base()
    ktm_logits = model.next_token_logits(PROMPTS[:1])
    ids = tok(PROMPTS[:1], return_tensors="pt")
    with torch.no_grad():
        ref = base(**ids).logits[:, -1]
    assert torch.allclose(ktm_logits, ref, atol=1e-5)


@pytest.mark.parametrize(
    "k,merger,context",
    [(1, "mean", 0), (3, "mlp", 0), (4, "mean", 0), (4, "mlp", 0), (4, "mlp", 3)],
)
def test_batch_invariance(make_model, k, merger, context):
    model = make_model(k=k, merger=merger, merger_init="random", merger_context=context)
    alone = torch.cat([model.next_token_logits([p]) for p in PROMPTS])
    together = model.next_token_logits(PROMPTS)
    reordered = model.next_token_logits(PROMPTS[::-1]).flip(0)
    assert (alone - together).abs().max() < 1e-4
    assert (alone - reordered).abs().max() < 1e-4


def test_mixed_prefix_suffix_stays_uncompressed(make_model):
    model = make_model(k=4, merger="mean")
    with_suffix = model.compress(["Tree: +AB"], suffixes=[" Parent: AB, Answer: "])
    suffix_ids = model.tokenize([" Parent: AB, Answer: "])[0]
    tail = with_suffix.embeds[0, -len(suffix_ids) :]
    assert torch.allclose(tail, model.embed(torch.tensor(suffix_ids)))
    # suffix changes only the tail, never the compressed blocks
    other = model.compress(["Tree: +AB"], suffixes=[" x"])
    n_blocks = with_suffix.tokens_out[0] - len(suffix_ids)
    assert torch.allclose(with_suffix.embeds[0, :n_blocks], other.embeds[0, :n_blocks])


def _naive_greedy(model: KTMModel, prompt: str, steps: int) -> list[int]:
    """Full recompute at every step, no cache."""
    batch = model.compress([prompt])
    embeds, out = batch.embeds, []
    model.eval()
    with torch.no_grad():
        for _ in range(steps):
            n = embeds.shape[1]
            mask = torch.ones(1, n, dtype=torch.long)
            h = model.decoder(
                inputs_embeds=embeds, attention_mask=mask, position_ids=torch.arange(n)[None]
            ).last_hidden_state
            nxt = model.head(h[:, -1]).argmax(-1)
            if nxt.item() == model.tokenizer.eos_token_id:
                break
            out.append(nxt.item())
            embeds = torch.cat([embeds, model.embed(nxt[:, None])], dim=1)
    return out


def test_cached_generation_equals_naive_loop(make_model):
    model = make_model(k=4, merger_init="random")
    for prompt in PROMPTS:
        batch = model.compress([prompt])
        cached = model.generate_ids(batch, __import__("ktm").SamplingConfig(max_new_tokens=12))[0]
        assert cached == _naive_greedy(model, prompt, 12)


def test_batched_generation_equals_single(make_model):
    model = make_model(k=3, merger_init="random")
    together = model.generate(PROMPTS, max_new_tokens=8)
    alone = [model.generate([p], max_new_tokens=8)[0] for p in PROMPTS]
    assert together == alone
    assert all(isinstance(t, str) for t in together)


def test_sampling_is_seeded(make_model):
    model = make_model(k=2)
    a = model.generate(PROMPTS[:1], max_new_tokens=6, do_sample=True, top_k=50, top_p=0.9, seed=3)
    b = model.generate(PROMPTS[:1], max_new_tokens=6, do_sample=True, top_k=50, top_p=0.9, seed=3)
    assert a == b


def test_loss_reads_only_answer_tokens(make_model):
    model = make_model(k=2)
    loss = model.loss(PROMPTS[:2], ["true", "false"])
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)


def test_save_load_roundtrip_identical(make_model, tiny_model_dir, tmp_path):
    model = make_model(k=4, merger_init="random")
    # make LoRA non-trivial so the round trip is a real test
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    before = model.next_token_logits(PROMPTS)
    model.save_pretrained(tmp_path / "ckpt")
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"ktm_config.json", "merger.safetensors", "adapter"} <= files
    assert (tmp_path / "ckpt" / "adapter" / "adapter_model.safetensors").is_file()
    loaded = KTMModel.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    assert torch.equal(loaded.next_token_logits(PROMPTS), before)


def test_load_refuses_other_base_model(make_model, other_shape_base, tmp_path):
    model = make_model(k=2)
    model.save_pretrained(tmp_path / "ckpt")
    other, tok = other_shape_base
    with pytest.raises(KTMError, match="hidden_size 64"):
        KTMModel.from_pretrained(tmp_path / "ckpt", causal_lm=other, tokenizer=tok)


def test_empty_prompt_is_rejected(make_model):
    model = make_model(k=2)
    with pytest.raises(KTMError, match="empty"):
        model.generate(["   "])
    with pytest.raises(KTMError, match="list of strings"):
        model.compress("not a list")


def test_too_long_prompt_is_rejected(make_model):
    model = make_model(k=1)
    with pytest.raises(KTMError, match="positions"):
        model.generate(["word " * 600], max_new_tokens=4)


def test_classify_picks_a_choice(make_model):
    model = make_model(k=2)
    preds = model.classify(PROMPTS, ["true", "false"])
    assert len(preds) == 3 and set(preds) <= {0, 1}


def test_training_attention_switches_only_for_bf16_on_cpu(tiny_model_dir):
    from ktm import KTMConfig, KTMModel

    bf16 = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=2), dtype=torch.bfloat16)
    assert bf16.causal_lm.config._attn_implementation == "sdpa"
    with bf16.training_attention():
        assert bf16.causal_lm.config._attn_implementation == "eager"
        loss = bf16.loss(PROMPTS[:2], ["true", "false"])
        loss.backward()
    assert bf16.causal_lm.config._attn_implementation == "sdpa"
    fp32 = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=2))
    with fp32.training_attention():
        assert fp32.causal_lm.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_fast_bf16_gets_a_note(tiny_model_dir, monkeypatch, capsys, native):
    from ktm.model import base_models

    monkeypatch.setattr(base_models, "cpu_has_native_bf16", lambda: native)
    base_models.load_base(str(tiny_model_dir), torch.bfloat16)
    assert ("no fast bf16" in capsys.readouterr().err) is (not native)
    base_models.load_base(str(tiny_model_dir), torch.float32)
    assert "bf16" not in capsys.readouterr().err


def test_spread_positions_match_the_uncompressed_layout(make_model):
    model = make_model(k=4, merger_init="random", positions="spread")
    prompt_ids, suffix_ids = model.encode_prompts(PROMPTS[:2], [" Answer:", " x"])
    batch = model.compress_ids(prompt_ids, suffix_ids, [[5, 6], [7]])
    for i, (p, s) in enumerate(zip(prompt_ids, suffix_ids)):
        n = -(-len(p) // 4)
        row = batch.position_ids[i][batch.attention_mask[i].bool()].tolist()
        # each block at its last token's position; suffix and answer where they are uncompressed
        assert row[:n] == [min(4 * (j + 1), len(p)) - 1 for j in range(n)]
        assert row[n:] == list(range(len(p), len(p) + len(s) + len(batch.answer_ids[i])))
    for positions in ("compact", "spread"):  # what the server checks = what generation uses
        m = make_model(k=4, positions=positions)
        b = m.compress_ids(prompt_ids, suffix_ids)
        used = (b.position_ids[:, -1] + 1).tolist()
        sizes = zip(prompt_ids, suffix_ids)
        assert used == [m.positions_needed(len(p), len(s), 0) for p, s in sizes]


@pytest.mark.parametrize("k", [1, 4])
def test_spread_positions_generation(make_model, k):
    spread = make_model(k=k, merger_init="random", positions="spread")
    compact = make_model(k=k, merger_init="random")
    logits = spread.next_token_logits(PROMPTS)
    if k == 1:  # one token per block: the same positions, the same model
        assert torch.allclose(logits, compact.next_token_logits(PROMPTS), atol=1e-5)
    else:  # the decoder reads the spread positions: the logits differ from compact ones
        assert (logits - compact.next_token_logits(PROMPTS)).abs().max() > 1e-4
    # batched, cached generation agrees with one prompt at a time
    together = spread.generate(PROMPTS, max_new_tokens=6)
    assert together == [spread.generate([p], max_new_tokens=6)[0] for p in PROMPTS]


def test_spread_positions_count_every_prompt_token_against_the_context(make_model):
    model = make_model(k=4, positions="spread")
    with pytest.raises(KTMError, match="positions"):
        model.generate(["word " * 600], max_new_tokens=4)  # ~600 positions of 512
    model = make_model(k=4)
    assert model.generate(["word " * 600], max_new_tokens=2)  # ~150 compact positions
