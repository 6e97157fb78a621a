"""Lookup pre-training examples (``ktm pretrain --lookup``): a merged chunk, ``Find:`` and two
of its tokens; the answer is the three tokens after them."""

import json

import torch

from ktm import KTMConfig, KTMModel
from ktm.cli import main
from ktm.model import RECONSTRUCT_MARKER
from ktm.recipes.lookup_examples import LOOKUP_MARKER, mix_lookup
from ktm.recipes.pretrain_text import reconstruction_examples
from ktm.training import TrainConfig, train

CHUNKS = [
    f"Order {i}: the amber kestrel sold {i * 7} maple crates to violet harbor on day {i + 3}."
    for i in range(12)
]


def test_a_share_becomes_lookups_whose_answer_follows_the_query(tokenizer):
    examples = reconstruction_examples(CHUNKS)
    mixed = mix_lookup(examples, tokenizer, 0.5, seed=0)
    lookups = [i for i, e in enumerate(mixed) if e.suffix != RECONSTRUCT_MARKER]
    assert lookups == [0, 2, 4, 6, 8, 10]  # spread evenly
    for i in lookups:
        doc, query = mixed[i].prompt.split(LOOKUP_MARKER)
        assert doc == CHUNKS[i] and doc.count(query) == 1  # the query points at one place
        assert query + mixed[i].answer in doc  # and the answer is what follows it
        assert len(tokenizer(mixed[i].answer, add_special_tokens=False)["input_ids"]) <= 3
    assert mixed[1] == examples[1] and mix_lookup(examples, tokenizer, 0.5, seed=0) == mixed
    # a chunk with no query that occurs once keeps its reconstruction example
    same = reconstruction_examples(["ab ab ab ab ab ab ab ab"])
    assert mix_lookup(same, tokenizer, 1.0) == same


def test_lookup_steps_lower_the_loss(tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    examples = mix_lookup(reconstruction_examples(CHUNKS), model.tokenizer, 1.0)
    cfg = TrainConfig(steps=12, batch_size=4, lr=3e-3, save_every=0, progress=False)
    history = train(model, examples, cfg, tmp_path / "run").history
    assert history[-1]["loss"] < history[0]["loss"]


def test_pretrain_mixes_lookups_and_refuses_a_bad_share(tiny_model_dir, tmp_path, capsys):
    text = tmp_path / "t.jsonl"
    text.write_text("".join(json.dumps({"text": c}) + "\n" for c in CHUNKS * 3))
    base = ["pretrain", "--model", str(tiny_model_dir), "--text", str(text), "--k", "4",
            "--steps", "2", "--batch-size", "2", "--chunk-tokens", "24", "--holdout-chunks",
            "2", "--k-warmup-steps", "0", "--no-progress"]  # fmt: skip
    assert main([*base, "--lookup", "0.5", "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "config.json").read_text())["lookup"] == 0.5
    assert (tmp_path / "p" / "model" / "merger.safetensors").is_file()
    code = main([*base, "--lookup", "0.8", "--continuation", "0.5", "--out", str(tmp_path / "x")])
    assert code == 2 and "lookup must be a share" in capsys.readouterr().err
