"""Token-space baselines keep exactly the budget of K-token merging."""

import math

import pytest
import torch

from ktm.config import KTMConfig
from ktm.errors import KTMError
from ktm.model.reduction import budget, reduce_ids, self_information


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
def test_reductions_keep_the_budget(k):
    prompts = [list(range(100, 100 + t)) for t in (1, 5, 8, 13, 30)]
    scores = lambda ids: [torch.rand(len(p)) for p in ids]  # noqa: E731
    for how in ("first", "last", "prune"):
        out = reduce_ids(prompts, how, k, scores)
        assert [len(o) for o in out] == [math.ceil(len(p) / k) for p in prompts]
    first = reduce_ids(prompts, "first", k)
    last = reduce_ids(prompts, "last", k)
    assert all(f == p[: len(f)] for f, p in zip(first, prompts))
    assert all(l_ == p[len(p) - len(l_) :] for l_, p in zip(last, prompts))


def test_prune_keeps_the_most_informative_tokens_in_order():
    prompt = [[10, 11, 12, 13, 14, 15]]
    scores = lambda ids: [torch.tensor([math.inf, 0.1, 5.0, 0.2, 3.0, 0.3])]  # noqa: E731
    assert reduce_ids(prompt, "prune", 2, scores) == [[10, 12, 14]]


def test_self_information_matches_the_model(tiny_base):
    lm, _ = tiny_base()
    ids = [[5, 6, 7, 8], [9, 10]]
    info = self_information(lm, ids)
    assert info[0][0] == math.inf and info[1].shape == (2,)
    logits = lm(input_ids=torch.tensor([ids[0]])).logits[0].float()
    expected = -logits[:-1].log_softmax(-1)[torch.arange(3), torch.tensor(ids[0][1:])]
    torch.testing.assert_close(info[0][1:], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("how", ["first", "last", "prune"])
def test_model_with_reduction_reads_the_budget(make_model, how):
    model = make_model(k=1, reduction=how, reduction_k=4)
    text = "one two three four five six seven eight nine ten"
    batch = model.compress([text], [" Answer:"])
    n_prompt = len(model.tokenize([text], special=True)[0])
    n_suffix = len(model.tokenize([" Answer:"])[0])
    assert batch.tokens_in == [n_prompt + n_suffix]
    assert batch.tokens_out == [math.ceil(n_prompt / 4) + n_suffix]
    assert batch.embeds.shape[1] == batch.tokens_out[0]


def test_reduction_config_checks():
    with pytest.raises(KTMError, match="k must be 1"):
        KTMConfig(k=4, reduction="first", reduction_k=4)
    with pytest.raises(KTMError, match="reduction must be one of"):
        KTMConfig(k=1, reduction="middle")
    assert budget(9, 4) == 3
