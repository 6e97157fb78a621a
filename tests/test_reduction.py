"""Token-space baselines are prompt transforms outside the model: they keep exactly the budget
of K-token merging, and the model (at K = 1) reads the kept tokens."""

import json
import math

import pytest
import torch

from ktm.errors import KTMError
from ktm.tasks.base import LabeledExample
from ktm.tasks.token_budget import reduce_ids, self_information


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
def test_reductions_keep_the_budget(k):
    prompts = [list(range(100, 100 + t)) for t in (1, 5, 8, 13, 30)]
    scores = lambda ids: [torch.rand(len(p)) for p in ids]  # noqa: E731
    asked = [torch.rand(len(p)) for p in prompts]
    for how in ("first", "last", "prune", "qprune"):
        out = reduce_ids(prompts, how, k, scores, asked)
        assert [len(o) for o in out] == [math.ceil(len(p) / k) for p in prompts]
    first = reduce_ids(prompts, "first", k)
    last = reduce_ids(prompts, "last", k)
    assert all(f == p[: len(f)] for f, p in zip(first, prompts))
    assert all(l_ == p[len(p) - len(l_) :] for l_, p in zip(last, prompts))


def test_prune_keeps_the_most_informative_tokens_in_order():
    prompt = [[10, 11, 12, 13, 14, 15]]
    scores = lambda ids: [torch.tensor([math.inf, 0.1, 5.0, 0.2, 3.0, 0.3])]  # noqa: E731
    assert reduce_ids(prompt, "prune", 2, scores) == [[10, 12, 14]]
    with pytest.raises(KTMError, match="prune needs token scores"):
        reduce_ids(prompt, "prune", 2)
    with pytest.raises(KTMError, match="unknown token reduction 'middle'"):
        reduce_ids(prompt, "middle", 2)


def test_qprune_keeps_what_the_question_names_first(make_model):
    from ktm.recipes.baselines import reduce_for

    model = make_model(k=1)
    table = "amber-basil=X7Q2P\niris-cedar=ABCDE\njade-onyx=KQ3M9\nraven-sable=P0P0P"
    examples = [LabeledExample(table, "KQ3M9", "\nvalue of jade-onyx?")]
    kept = reduce_for(model, examples, "qprune", 3)[0].prompt_ids
    text = model.tokenizer.decode(list(kept)).replace(" ", "")
    assert "jade-onyx=KQ3M9" in text  # the named key and its value, before anything else
    assert reduce_ids([[1, 2, 3, 4]], "qprune", 2, lambda ids: [torch.zeros(4)],
                      [torch.tensor([0.0, 0.5, 0.0, 2.0])]) == [[2, 4]]  # fmt: skip
    with pytest.raises(KTMError, match="question kept raw after it"):
        reduce_for(model, [LabeledExample(table, "x", None)], "qprune", 3)
    with pytest.raises(KTMError, match="qprune needs the question"):
        reduce_ids([[1, 2]], "qprune", 2, lambda ids: [torch.zeros(2)])


def test_prune_scores_each_distinct_prompt_once():
    seen: list[list[int]] = []

    def scores(ids):
        seen.extend(ids)
        return [torch.tensor([float(t % 7) for t in p]) for p in ids]

    prompts = [[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4], [1, 2, 3, 4]]  # a tree, once a question
    out = reduce_ids(prompts, "prune", 2, scores)
    assert seen == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert out == [[3, 4], [5, 6], [3, 4], [3, 4]]


def test_self_information_matches_the_model(tiny_base):
    lm, _ = tiny_base()
    ids = [[5, 6, 7, 8], [9, 10]]
    info = self_information(lm, ids)
    assert info[0][0] == math.inf and info[1].shape == (2,)
    logits = lm(input_ids=torch.tensor([ids[0]])).logits[0].float()
    expected = -logits[:-1].log_softmax(-1)[torch.arange(3), torch.tensor(ids[0][1:])]
    torch.testing.assert_close(info[0][1:], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("how", ["first", "last", "prune", "qprune"])
def test_the_model_reads_the_kept_tokens(make_model, how):
    """The transform hands the kept ids to the model as the prompt; the model reads exactly
    the budget, the raw suffix untouched, and its output does not depend on the batch."""
    from ktm.recipes.baselines import reduce_for

    model = make_model(k=1)
    texts = ["one two three four five six seven eight nine ten", "alpha beta gamma delta"]
    examples = [LabeledExample(t, "x", " Answer:") for t in texts]
    reduced = reduce_for(model, examples, how, 4)
    n_prompt = [len(model.tokenize([t], special=True)[0]) for t in texts]
    n_suffix = len(model.tokenize([" Answer:"])[0])
    assert [len(e.prompt_ids) for e in reduced] == [math.ceil(n / 4) for n in n_prompt]
    assert [e.prompt for e in reduced] == texts  # the text stays for reports
    batch = model.compress([e.model_prompt for e in reduced], [e.suffix for e in reduced])
    assert batch.tokens_out == [math.ceil(n / 4) + n_suffix for n in n_prompt]
    alone = model.next_token_logits([reduced[1].model_prompt], [" Answer:"])
    together = model.next_token_logits([e.model_prompt for e in reduced], [" Answer:"] * 2)
    torch.testing.assert_close(alone[0], together[1], atol=1e-4, rtol=1e-4)


def test_prune_scores_with_the_base_model_not_the_adapter(make_model, tiny_base):
    from ktm.recipes.baselines import reduce_for

    model = make_model(k=1)
    for p in model.lm.parameters():  # an adapter that would change the scores if it were on
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.5)
    text = "one two three four five six seven eight nine ten eleven twelve"
    (kept,) = reduce_for(model, [LabeledExample(text, "x")], "prune", 4)
    lm, _ = tiny_base()
    ids = model.tokenize([text], special=True)
    (expected,) = reduce_ids(ids, "prune", 4, lambda i: self_information(lm, i))
    assert list(kept.prompt_ids) == expected


def test_a_baseline_run_saves_its_transform_in_the_run_not_the_model(train_on_trees):
    from ktm.cli import main

    out = train_on_trees("--k", "1", "--reduction", "first", "--reduction-k", "4", "--steps", "2")
    saved = json.loads((out / "config.json").read_text())
    assert saved["reduction"] == "first" and "reduction" not in saved["ktm"]
    model_cfg = json.loads((out / "model" / "ktm_config.json").read_text())["config"]
    assert "reduction" not in model_cfg
    assert main(["eval", str(out), "--data", str(train_on_trees.data)]) == 0  # re-applies it


def test_a_k4_reduction_is_refused(capsys):
    from ktm.cli import main

    assert main(["train", "--k", "4", "--reduction", "first", "--out", "x"]) == 2
    assert "k must be 1" in capsys.readouterr().err


def test_models_saved_before_the_change_load_or_are_refused_clearly():
    from ktm.config import KTMConfig

    plain = KTMConfig.from_dict({"k": 4, "reduction": None, "reduction_k": 1})
    assert plain == KTMConfig(k=4)
    with pytest.raises(KTMError, match="token-reduction baseline .'prune'. of ktm < 0.1.1"):
        KTMConfig.from_dict({"k": 1, "reduction": "prune", "reduction_k": 4})
