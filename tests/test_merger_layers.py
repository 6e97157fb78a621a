"""A merger that reads each prompt token's state after the base model's first layers
(``merger_layers``) instead of its bare embedding."""

from __future__ import annotations

import pytest
import torch

from ktm import KTMConfig, KTMError, KTMModel

PROMPTS = [
    "Tree: +AB\n++CD\n++EF\n+++GH, Task: Parent/Child Relationship, Parent: CD, Child: GH",
    "The quick brown fox jumps over the lazy dog.",
]


def _with_states(make_model, **cfg) -> KTMModel:
    model = make_model(k=4, merger_init="random", merger_layers=1, **cfg)
    with torch.no_grad():  # the map starts at zero; give it weights, as training would
        model.merger.states.weight.normal_(0, 0.05)
    return model.eval()


def test_it_starts_as_the_merger_without_layers(make_model):
    plain = make_model(k=4, merger_init="random").eval()
    layered = make_model(k=4, merger_init="random", merger_layers=2).eval()
    assert torch.equal(layered.merger.states.weight, torch.zeros(64, 64))
    torch.testing.assert_close(layered.compress(PROMPTS).embeds, plain.compress(PROMPTS).embeds)


def test_blocks_read_the_states_and_raw_tokens_stay_embeddings(make_model):
    model = _with_states(make_model)
    ids, _ = model.encode_prompts(PROMPTS)
    with_states = model.compress(PROMPTS).embeds
    model.config.merger_layers = 0
    without = model.compress(PROMPTS).embeds
    assert (with_states - without).abs().max() > 1e-3  # the blocks changed
    model.config.merger_layers = 1
    # a token kept raw by selective expansion is its plain embedding
    raw = [[i == 0 for i in range(len(p))] for p in ids]
    batch = model.compress_ids(ids, raw=raw)
    for row, p in enumerate(ids):
        first = batch.embeds[row][batch.attention_mask[row].bool()][0]
        torch.testing.assert_close(first, model.embed(torch.tensor(p[0])))


def test_batch_invariance_cache_and_round_trip(make_model, model_invariants):
    back = model_invariants(_with_states(make_model), PROMPTS)
    assert back.config.merger_layers == 1


def test_it_trains_through_the_states(make_model, few_steps):
    model = make_model(k=4, merger_layers=1, lora_r=4)
    ids, _ = model.encode_prompts(PROMPTS)
    first, last = few_steps(model, ids, model.encode_answers(["yes", "no"]))
    assert last < first
    assert model.merger.states.weight.abs().sum() > 0  # the states map learns


def test_it_starts_from_a_merger_without_layers_but_not_the_reverse(make_model, tmp_path):
    plain = make_model(k=4, merger_init="random")
    plain.save_pretrained(tmp_path / "plain")
    layered = make_model(k=4, merger_init="random", merger_layers=1, seed=3)
    layered.init_from(tmp_path / "plain")
    torch.testing.assert_close(layered.merger.mlp[0].weight, plain.merger.mlp[0].weight)
    assert torch.equal(layered.merger.states.weight, torch.zeros(64, 64))
    layered.save_pretrained(tmp_path / "layered")
    with pytest.raises(KTMError, match="merger_layers=1"):
        make_model(k=4).init_from(tmp_path / "layered")


def test_bad_layer_counts_are_refused(make_model):
    with pytest.raises(KTMError, match="merger_layers=2 needs the MLP merger"):
        KTMConfig(k=4, merger="mean", merger_layers=2)
    with pytest.raises(KTMError, match="merger_layers must be an integer"):
        KTMConfig(k=4, merger_layers=-1)
    with pytest.raises(KTMError, match="merger_layers=9 but the base model has 2 layers"):
        make_model(k=4, merger_layers=9)
