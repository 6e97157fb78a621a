"""Selective expansion: the highest-ranked tokens stay raw, the rest merge, within a budget."""

from __future__ import annotations

import random

import pytest
import torch

from ktm.errors import KTMError
from ktm.expansion import budget_positions, choose_raw, expanded_length, segments

PROMPTS = [
    "Tree: +AB\n++CD\n++EF\n+++GH, Task: Parent/Child Relationship, Parent: CD, Child: GH",
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
]


@pytest.mark.parametrize("seed", range(20))
def test_choice_fits_the_budget_and_keeps_the_top_of_the_ranking(seed):
    rng = random.Random(seed)
    t, k = rng.randint(1, 60), rng.randint(2, 8)
    scores = torch.tensor([rng.random() for _ in range(t)])
    budget = rng.randint(-(-t // k), t)
    raw = choose_raw(scores, k, budget)
    assert expanded_length(t, k, raw) <= budget
    kept = [i for i in range(t) if raw[i]]
    ranked = sorted(range(t), key=lambda i: -float(scores[i]))
    assert sorted(ranked[: len(kept)]) == kept  # exactly the top of the ranking
    if len(kept) < t:  # the next-ranked token would not have fitted
        more = list(raw)
        more[ranked[len(kept)]] = True
        assert expanded_length(t, k, more) > budget
    # the layout covers every token once, blocks at most K long and never across a kept token
    covered = [i for s, e, is_raw in segments(t, k, raw) for i in range(s, e)]
    assert covered == list(range(t))
    for s, e, is_raw in segments(t, k, raw):
        assert e - s == 1 if is_raw else 1 <= e - s <= k and not any(raw[s:e])


def test_whole_budget_keeps_everything_and_least_budget_nothing():
    scores = torch.arange(10.0)
    assert all(choose_raw(scores, 4, 10))
    assert not any(choose_raw(scores, 4, 3))  # ⌈10/4⌉: every block merged


def test_budget_positions_from_a_share_or_a_count():
    assert budget_positions(100, 4) == 25
    assert budget_positions(100, 4, ratio=0.3) == 30
    assert budget_positions(100, 4, ratio=0.1) == 25  # never below every block merged
    assert budget_positions(100, 4, positions=40) == 40
    assert budget_positions(10, 4, positions=40) == 10  # never above the prompt
    with pytest.raises(KTMError, match="below the 25"):
        budget_positions(100, 4, positions=20)


def test_model_reports_positions_within_the_budget(make_model):
    model = make_model(k=4)
    plain = model.compress(PROMPTS)
    batch = model.compress(PROMPTS, budget=0.4)
    for i in range(len(PROMPTS)):
        t = batch.tokens_in[i]
        assert plain.tokens_out[i] == -(-t // 4)
        assert plain.tokens_out[i] < batch.tokens_out[i] <= int(0.4 * t)
        assert batch.kept[i] and plain.kept[i] == []
        assert int(batch.attention_mask[i].sum()) == batch.tokens_out[i]
    exact = model.compress(PROMPTS, budget_positions=20)
    assert all(n <= 20 for n in exact.tokens_out)
    with pytest.raises(KTMError, match="not both"):
        model.compress(PROMPTS, budget=0.4, budget_positions=20)
    with pytest.raises(KTMError, match="budget must be"):
        model.compress(PROMPTS, budget=2.0)


def test_kept_tokens_are_the_ones_the_scorer_ranks_highest(make_model):
    for scorer in ("prior", "selfinfo"):
        model = make_model(k=4, token_scorer=scorer, budget=0.5)
        ids, _ = model.encode_prompts(PROMPTS)
        scores = model.token_scores(ids)
        batch = model.compress(PROMPTS)
        for i, s in enumerate(scores):
            ranked = sorted(range(len(s)), key=lambda j: (-float(s[j]), j))
            assert sorted(ranked[: len(batch.kept[i])]) == batch.kept[i]


def test_auto_scorer_is_idf_once_fitted_and_prior_before(make_model):
    model = make_model(k=4, budget=0.5)  # token_scorer auto, the default
    ids, _ = model.encode_prompts(PROMPTS)
    prior = make_model(k=4, token_scorer="prior").token_scores(ids)
    assert all(torch.equal(a, b) for a, b in zip(model.token_scores(ids), prior))
    model.fit_token_idf(PROMPTS[1:])  # PROMPTS[0]'s own words are the rarest now
    scores = model.token_scores(ids)
    assert all(torch.equal(s, model.token_idf[torch.tensor(i)]) for s, i in zip(scores, ids))
    assert not torch.equal(scores[0], prior[0])


def test_kept_tokens_reach_the_model_as_their_own_embeddings(make_model):
    model = make_model(k=4, budget=0.5)
    ids, _ = model.encode_prompts(PROMPTS[:1])
    batch = model.compress(PROMPTS[:1])
    raw = model.raw_tokens(ids)[0]
    layout = segments(len(ids[0]), 4, raw)
    row = batch.embeds[0]
    for slot, (s, _, is_raw) in enumerate(layout):
        if is_raw:
            assert torch.equal(row[slot], model.embed(torch.tensor(ids[0][s])))


def test_batch_invariance_with_expansion(make_model):
    model = make_model(k=4, budget=0.4)
    together = model.next_token_logits(PROMPTS)
    for i, p in enumerate(PROMPTS):
        alone = model.next_token_logits([p])
        torch.testing.assert_close(alone[0], together[i], atol=1e-4, rtol=1e-4)


def test_cached_generation_equals_recompute_with_expansion(make_model):
    model = make_model(k=4, budget=0.4).eval()
    ids = model.tokenize(PROMPTS[:1], special=True)[0]
    cached = model.generate_ids(model.compress_ids([ids]), None)[0][:5]
    assert len(cached) == 5
    # recompute: append each generated token as a raw suffix token and re-run the whole batch
    recomputed: list[int] = []
    with torch.no_grad():
        for _ in range(5):
            hidden, _ = model.hidden_states(model.compress_ids([ids], [recomputed]))
            recomputed.append(int(model.head(hidden[:, -1]).argmax(-1)))
    assert recomputed == cached


def test_expansion_trains_and_round_trips(make_model, tmp_path, few_steps):
    from ktm import KTMModel

    model = make_model(k=4, budget=0.4, lora_r=4)
    ids, _ = model.encode_prompts(PROMPTS)
    first, last = few_steps(model, ids, model.encode_answers(["yes", "no"]))
    assert last < first
    model.save_pretrained(tmp_path / "m")
    back = KTMModel.from_pretrained(tmp_path / "m")
    assert back.config.budget == 0.4
    torch.testing.assert_close(back.next_token_logits(PROMPTS), model.next_token_logits(PROMPTS))


def test_budget_needs_k_above_one():
    from ktm import KTMConfig

    with pytest.raises(KTMError, match="needs K > 1"):
        KTMConfig(k=1, budget=0.5)
    with pytest.raises(KTMError, match="budget must be"):
        KTMConfig(k=4, budget=0.0)
