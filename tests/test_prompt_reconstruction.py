"""The prompt-reconstruction script measures a run's own test prompts, from a saved model or a
training checkpoint alike."""

import json
import sys

import pytest

from ktm.cli import main


def test_a_checkpoint_measures_as_its_saved_model(tiny_model_dir, tmp_path, monkeypatch, script):
    data, run = tmp_path / "d", tmp_path / "run"
    assert main(["data", "tree", "--train-trees", "30", "--test-trees", "3", "--out",
                 str(data)]) == 0  # fmt: skip
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "4",
                 "--steps", "3", "--batch-size", "2", "--eval-every", "0",
                 "--pretrain-k-warmup-steps", "2", "--no-progress",
                 "--out", str(run)]) == 0  # fmt: skip
    last = sorted((run / "pretrain" / "checkpoints").glob("step-*"))[-1]
    out = tmp_path / "rec.json"
    argv = ["prompt_reconstruction.py", str(run), str(run / "pretrain" / "model"), str(last),
            "--limit", "4", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    script("prompt_reconstruction").main()
    result = json.loads(out.read_text())
    saved, checkpoint = result["rows"]
    assert result["prompts"] == 4 and saved["k"] == checkpoint["k"] == 4
    assert saved["reconstruction_nll"] > 0
    assert checkpoint["reconstruction_nll"] == pytest.approx(saved["reconstruction_nll"], rel=1e-5)
    assert saved["exact_share"] == checkpoint["exact_share"]
    by_relation = saved["exact_share_by_relation"]
    assert set(by_relation) <= {"parent", "reverse", "ancestor", "sibling", "other"}
    assert sum(v["n"] for v in by_relation.values()) == 4
    assert sum(v["repeated"] for v in by_relation.values()) == round(saved["exact_share"] * 4)


def test_a_prompt_counts_as_repeated_when_the_output_starts_with_it(script):
    class Echo:
        def tokenize(self, texts):
            return [t.split() for t in texts]

        def generate(self, prompts, suffixes, max_new_tokens):
            return [" " + p + " and on" if i % 2 == 0 else p[::-1] for i, p in enumerate(prompts)]

    reconstruction = script("prompt_reconstruction")
    hits = reconstruction.repeated(Echo(), ["Tree: +AB", "Tree: +CD", "Tree: +EF"], batch_size=2)
    assert hits == [True, False, True]
    assert reconstruction.share_by(hits, ["parent", "other", "other"]) == {
        "other": {"repeated": 1, "n": 2, "share": 0.5},
        "parent": {"repeated": 1, "n": 1, "share": 1.0},
    }


def test_reconstruction_by_length_measures_each_length(tiny_model_dir, tmp_path, monkeypatch,
                                                       script):  # fmt: skip
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: a fox jumps over dog {i}." for i in range(40)))
    assert main(["pretrain", "--model", str(tiny_model_dir), "--text", str(corpus), "--k", "4",
                 "--chunk-tokens", "16", "--holdout-chunks", "2", "--steps", "2",
                 "--batch-size", "2", "--k-warmup", "none", "--no-progress",
                 "--out", str(tmp_path / "pre")]) == 0  # fmt: skip
    out = tmp_path / "len.json"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "reconstruction_by_length.py",
            str(corpus),
            str(tmp_path / "pre" / "model"),
            "--lengths",
            "8,16",
            "--chunks",
            "3",
            "--dtype",
            "float32",
            "--out",
            str(out),
        ],
    )
    script("reconstruction_by_length").main()  # fmt: skip
    (row,) = json.loads(out.read_text())["rows"]
    losses = row["reconstruction_nll"]
    assert row["k"] == 4 and set(losses) == {"8", "16"} and all(v > 0 for v in losses.values())
