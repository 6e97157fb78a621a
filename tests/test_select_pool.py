"""Select pooling: a merged block starts from its highest-ranked token instead of its mean."""

from __future__ import annotations

import pytest
import torch

from ktm import KTMConfig, KTMError, KTMModel
from ktm.merger import MeanMerger, MLPMerger
from ktm.merger.common import select_token

PROMPTS = [
    "Tree: +AB\n++CD\n++EF\n+++GH, Task: Parent/Child Relationship, Parent: CD, Child: GH",
    "The quick brown fox jumps over the lazy dog.",
]


def test_select_token_picks_the_top_real_slot():
    blocks = torch.arange(2 * 3 * 2, dtype=torch.float).reshape(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    scores = torch.tensor([[0.0, 1.0, 9.0], [5.0, 5.0, 1.0]])  # a masked 9; a tie: the first
    out = select_token(blocks, mask, scores)
    assert torch.equal(out, torch.stack([blocks[0, 1], blocks[1, 0]]))


@pytest.mark.parametrize("merger", ["mean", "mlp"])
def test_untrained_select_merger_hands_the_lm_the_top_token_of_each_block(make_model, merger):
    model = make_model(k=4, merger=merger, merger_pool="select")
    ids, _ = model.encode_prompts(PROMPTS)
    scores = model.token_scores(ids)
    batch = model.compress(PROMPTS)
    for i, p in enumerate(ids):
        n = -(-len(p) // 4)
        row = batch.embeds[i][batch.attention_mask[i].bool()]
        assert row.shape[0] == n
        for j in range(n):
            block = slice(4 * j, min(4 * j + 4, len(p)))
            top = 4 * j + int(torch.argmax(scores[i][block]))
            assert torch.equal(row[j], model.embed(torch.tensor(p[top])))


def test_select_pool_batch_invariance_cache_and_round_trip(make_model, model_invariants):
    model = make_model(k=4, merger_pool="select", merger_init="random").eval()
    assert model_invariants(model, PROMPTS).config.merger_pool == "select"


def test_select_pool_trains(make_model, few_steps):
    model = make_model(k=4, merger_pool="select", lora_r=4)
    ids, _ = model.encode_prompts(PROMPTS)
    first, last = few_steps(model, ids, model.encode_answers(["yes", "no"]))
    assert last < first
    assert model.merger.mlp[-1].weight.abs().sum() > 0  # the MLP on top learns too


def test_k1_and_bad_pool():
    with pytest.raises(KTMError, match="merger_pool"):
        KTMConfig(merger_pool="max")
    assert isinstance(MeanMerger(4, 8, "select"), MeanMerger)
    assert MLPMerger(4, 8, 1.0, pool="select").pool == "select"


def test_k1_with_select_pool_equals_the_base_model(make_model, tiny_base):
    model = make_model(k=1, merger_pool="select", lora_r=0)
    lm, tok = tiny_base()
    ids = tok(PROMPTS[:1])["input_ids"]
    expected = lm(input_ids=torch.tensor(ids)).logits[0, -1]
    torch.testing.assert_close(model.next_token_logits(PROMPTS[:1])[0], expected, atol=1e-4,
                               rtol=1e-4)  # fmt: skip


def test_idf_scorer_ranks_template_words_low_and_travels_with_the_model(make_model, tmp_path):
    from ktm.token_scores import fit_idf

    idf = fit_idf([[1, 2, 3], [1, 2], [1, 4]], 6)
    assert idf[1] == 0 and idf[4] > idf[2] > 0 and idf[5] == idf.max()  # unseen: the rarest
    model = make_model(k=4, token_scorer="idf", merger_pool="select")
    with pytest.raises(KTMError, match="fit_token_idf"):
        model.compress(PROMPTS)
    model.fit_token_idf(PROMPTS)
    ids, _ = model.encode_prompts(PROMPTS)
    scores = model.token_scores(ids)
    shared = set(ids[0]) & set(ids[1])
    assert all(float(scores[0][j]) < float(scores[0].max()) for j, t in enumerate(ids[0])
               if t in shared)  # fmt: skip
    model.save_pretrained(tmp_path / "m")
    back = KTMModel.from_pretrained(tmp_path / "m")
    assert torch.equal(back.token_idf, model.token_idf)
    torch.testing.assert_close(back.next_token_logits(PROMPTS), model.next_token_logits(PROMPTS))


def test_train_fits_the_idf_table(train_on_trees):
    from safetensors.torch import load_file

    run = train_on_trees("--k", "4", "--steps", "1", "--token-scorer", "idf",
                         "--merger-pool", "select", "--pretrain-steps", "0")  # fmt: skip
    idf = load_file(run / "model" / "token_idf.safetensors")["idf"]
    back = KTMModel.from_pretrained(run / "model")
    ids = back.tokenize([" Task"])[0]
    assert float(idf[ids[0]]) < 0.1  # a template word of every tree prompt
