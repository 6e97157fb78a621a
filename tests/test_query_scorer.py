"""The ``query`` token scorer: selective expansion keeps raw what the question points at."""

from __future__ import annotations

import pytest
import torch

from ktm.errors import KTMError
from ktm.query_match import question_scores

TABLE = "amber-basil=X7Q2P\namber-cedar=ABCDE\niris-basil=ZZZZZ\njade-onyx=KQ3M9\nraven-sable=P0P0P"
PROMPTS = [TABLE, "Tree: +KB\n++OD\n++ZR\n+++QW"]
SUFFIXES = ["\nvalue of iris-basil?", ", Parent: OD, Child: QW, Answer: "]


def test_the_asked_key_outranks_its_value_and_partial_matches():
    pieces = ["amber", "-", "bas", "il", "=", "X7", "Q2P", "\n", "iris", "-", "basil", "=", "ZZ"]
    s = question_scores(pieces, "value of amber-basil?").tolist()
    assert s[:4] == [2.0, 2.0, 2.0, 2.0]  # the whole key, its "-" too: a run of 2, once
    assert s[4:7] == [1.0, 1.0, 1.0]  # "=X7Q2P": the word after the run, half of it
    assert s[7] == 0.0
    assert s[10] == 0.5  # "basil" alone: a run of 1 found twice (bas|il and basil)
    assert max(s[8:]) < 1.0


def test_a_word_on_every_line_points_nowhere():
    line = [" is", " the", " parent", " of"]
    pieces = ["Ab", *line, " Cd", ".\n", "Ef", *line, " Ij", ".\n", "Cd", *line, " Gh", "."]
    s = question_scores(pieces, "Is Ab an ancestor of Gh?").tolist()
    assert s[0] == 1.0  # "Ab": a run of 1, once
    assert s[-2] == 2.0 and s[-3] == 2.0  # "of Gh": a run of 2, once
    assert s[1] == 0.5  # " is" after "Ab": half of "Ab"
    assert s[8] == s[15] == pytest.approx(1 / 3)  # "is" elsewhere: on every line
    assert s[4] == s[11] == pytest.approx(1 / 3)  # "of" where "Gh" does not follow
    assert question_scores([], "anything").shape == (0,)
    assert question_scores(["x", "y"], "").tolist() == [0.0, 0.0]


def test_kept_tokens_are_the_ones_the_question_names(make_model):
    model = make_model(k=4, token_scorer="query", budget=0.5)
    ids, suffix_ids = model.encode_prompts(PROMPTS, SUFFIXES)
    scores = model.token_scores(ids, suffix_ids)
    batch = model.compress(PROMPTS, SUFFIXES)
    for i, s in enumerate(scores):
        ranked = sorted(range(len(s)), key=lambda j: (-float(s[j]), j))
        assert sorted(ranked[: len(batch.kept[i])]) == batch.kept[i]
        assert batch.tokens_out[i] <= int(0.5 * batch.tokens_in[i]) + len(suffix_ids[i])
    kept = model.tokenizer.decode([ids[0][j] for j in batch.kept[0]])
    assert "iris" in kept and "basil" in kept and "ZZZZZ" in kept.replace(" ", "")


def test_query_scorer_is_batch_invariant(make_model):
    model = make_model(k=4, token_scorer="query", budget=0.4)
    together = model.next_token_logits(PROMPTS, SUFFIXES)
    for i, p in enumerate(PROMPTS):
        alone = model.next_token_logits([p], [SUFFIXES[i]])
        torch.testing.assert_close(alone[0], together[i], atol=1e-4, rtol=1e-4)


def test_query_scorer_without_a_question_is_refused(make_model):
    model = make_model(k=4, token_scorer="query", budget=0.4)
    with pytest.raises(KTMError, match="question kept raw after it"):
        model.compress(PROMPTS)
    assert model.compress(PROMPTS[:1], ["\nvalue of jade-onyx?"]).kept[0]


def test_vllm_payload_carries_the_question_ranked_embeddings(make_model):
    from ktm.recipes.vllm import completions_request, decode_prompt_embeds, prompt_embeds

    model = make_model(k=4, token_scorer="query")
    batch = model.compress(PROMPTS, SUFFIXES, budget=0.5)
    embeds = prompt_embeds(model, PROMPTS, budget=0.5, suffixes=SUFFIXES)
    mask = batch.attention_mask.bool()
    for i, e in enumerate(embeds):
        assert torch.equal(e, batch.embeds[i][mask[i]])
    bodies = completions_request(model, PROMPTS, "ktm-export", 0.5, None, SUFFIXES, max_tokens=2)
    assert torch.equal(decode_prompt_embeds(bodies[1]["prompt_embeds"]), embeds[1])


def test_query_expansion_trains_and_round_trips(make_model, tmp_path, few_steps):
    from ktm import KTMModel

    model = make_model(k=4, token_scorer="query", budget=0.4, lora_r=4)
    ids, suffix_ids = model.encode_prompts(PROMPTS, SUFFIXES)
    first, last = few_steps(model, ids, model.encode_answers(["ZZZZZ", "true"]), suffix_ids)
    assert last < first
    model.save_pretrained(tmp_path / "m")
    back = KTMModel.from_pretrained(tmp_path / "m")
    assert back.config.token_scorer == "query"
    torch.testing.assert_close(
        back.next_token_logits(PROMPTS, SUFFIXES), model.next_token_logits(PROMPTS, SUFFIXES)
    )


def test_a_run_that_merges_its_question_is_refused_the_question_ranking(capsys):
    from ktm.cli import main

    assert main(["train", "--k", "4", "--token-scorer", "query", "--out", "x"]) == 2
    assert "ranks a prompt's tokens by the question kept raw" in capsys.readouterr().err
    assert (
        main(["train", "--k", "1", "--reduction", "qprune", "--reduction-k", "4", "--out", "x"])
        == 2
    )
    assert "keep the question raw (--split-question" in capsys.readouterr().err
