"""The ``query`` token scorer: selective expansion keeps raw what the question points at."""

from __future__ import annotations

import re

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
    # "amber-basil": a run of 2, once (2.0), plus half its line's best other word over its count
    assert s[:4] == [3.0, 2.0, 2.5, 2.5]
    assert s[4] == 1.0  # "=": the span to the end of the next word, half the run
    assert s[5:7] == [2.0, 2.0]  # "X7Q2P": half the run, plus half the key on its line
    assert s[7] == 0.0
    assert s[10] == 0.5625  # "basil" alone: a run of 1 found twice, and a weak line
    assert max(s[8:]) < 1.0


def test_the_chain_between_the_named_things_outranks_other_lines():
    line = [" is", " the", " parent", " of"]
    pieces = ["Ab", *line, " Cd", ".\n", "Ef", *line, " Ij", ".\n", "Cd", *line, " Gh", "."]
    s = question_scores(pieces, "Is Ab an ancestor of Gh?").tolist()
    chain = [s[0], s[5], s[14], s[19]]  # Ab, Cd, Cd, Gh: Ab -> Cd -> Gh, Cd named nowhere
    unrelated = s[7:13]  # "Ef is the parent of Ij": no word of it on the chain's lines
    assert min(chain) > max(unrelated)
    assert s[19] == max(s)  # "of Gh": a run of 2, once
    assert s[5] > s[2]  # the linking name outranks the template word beside it
    assert s[8] == s[10] == s[11]  # a template word on every line: no line of its own
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


def test_the_second_hop_reaches_past_a_template_word_to_the_answer():
    lines = ["Ab lives in Oslo.", "Cd lives in Rome.", "Oslo is in Norland.", "Rome is in Drosk."]
    lines += ["Ef lives in Rome.", "Gh lives in Rome."]
    pieces = re.findall(r"\w+|\W", "\n".join(lines))
    s = question_scores(pieces, "Which country does Ab live in?").tolist()
    at = {p: [i for i, q in enumerate(pieces) if q == p] for p in set(pieces)}
    assert all(s[i] == 0.0 for i in at["in"])  # on every line: points nowhere
    norland, drosk = s[at["Norland"][0]], s[at["Drosk"][0]]
    assert norland > drosk  # the asked person's city's country outranks the other one
    assert min(s[i] for i in at["Oslo"]) > max(s[i] for i in at["Rome"])
