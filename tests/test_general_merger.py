"""General mergers: task runs start from the one that fits their base model and K, say so,
and pre-train on their own prompts otherwise; the general corpus."""

from __future__ import annotations

import json

import pytest
import torch

from ktm import KTMConfig, KTMModel
from ktm.cli import main
from ktm.recipes.corpus import general_texts


@pytest.fixture(scope="module")
def general_dir(tiny_model_dir, tmp_path_factory):
    """A folder of general mergers for the tiny model: K = 4 with LoRA r 8 (the default)."""
    folder = tmp_path_factory.mktemp("mergers")
    torch.manual_seed(1)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    with torch.no_grad():
        model.merger.mlp[-1].weight.normal_(0, 0.02)  # not the fresh init: a start to spot
    model.save_pretrained(folder / "tiny-k4")
    return folder


def _train(tiny_model_dir, data, out, *extra):
    return main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "4",
                 "--steps", "1", "--batch-size", "2", "--no-progress", "--out", str(out),
                 *extra])  # fmt: skip


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    data = tmp_path_factory.mktemp("trees")
    args = ["data", "tree", "--train-trees", "8", "--test-trees", "2", "--out", str(data)]
    assert main(args) == 0
    return data


def test_task_run_starts_from_the_general_merger(
    general_dir, tiny_model_dir, trees, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("KTM_MERGERS", str(general_dir))
    assert _train(tiny_model_dir, trees, tmp_path / "r", "--steps", "4") == 0
    err = capsys.readouterr().err
    assert f"starting from the general merger {general_dir / 'tiny-k4'}" in err
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["init_from"] == str(general_dir / "tiny-k4")
    # a short pre-training on the task's prompts (a quarter of the steps), from the merger
    assert saved["pretrain_steps"] is None and saved["pretrain_lr"] == 5e-4
    phase = json.loads((tmp_path / "r" / "pretrain" / "config.json").read_text())
    assert phase["init_from"] == saved["init_from"] and phase["k_warmup"] == []
    assert phase["train"]["steps"] == 1
    assert f"for 1 steps first, from {saved['init_from']}" in err
    assert saved["train"]["lr"] == 3e-4  # the fine-tuning rate of a pre-trained start
    anneal = saved["train"]["raw_anneal_steps"]  # and the raw-to-merged curriculum, said
    assert anneal == saved["train"]["steps"] // 2 >= 1
    assert f"raw-to-merged curriculum over the first {anneal} steps" in err


def test_too_little_text_skips_the_phase_and_starts_from_the_general_merger(
    general_dir, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("KTM_MERGERS", str(general_dir))
    rows = tmp_path / "t.jsonl"
    rows.write_text("".join(json.dumps({"q": f"is {w} big", "a": "yes" if i % 2 else "no"}) + "\n"
                            for i, w in enumerate(["ants", "whales"])))  # fmt: skip
    assert main(["train", "--model", str(tiny_model_dir), "--task", "custom", "--train-file",
                 str(rows), "--test-file", str(rows), "--template", "{q}", "--answer-field", "a",
                 "--labels", "yes,no", "--k", "4", "--steps", "4", "--batch-size", "2",
                 "--no-progress", "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "no pre-training" in err and f"the task starts from {general_dir / 'tiny-k4'}" in err
    assert "skipped" in json.loads((tmp_path / "r" / "metrics.json").read_text())["pretrain"]


def test_a_mismatching_general_merger_is_named_and_not_used(
    general_dir, tiny_model_dir, trees, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("KTM_MERGERS", str(general_dir))
    assert _train(tiny_model_dir, trees, tmp_path / "r", "--lora-r", "4") == 0
    err = capsys.readouterr().err
    assert "no general merger" in err and "lora_r 8 (yours 4)" in err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["init_from"] is None
    assert (tmp_path / "r" / "pretrain").is_dir()  # the task's own pre-training instead


def test_a_run_at_the_default_width_takes_the_general_mergers_width(
    tiny_model_dir, trees, tmp_path, monkeypatch, capsys
):
    mergers = tmp_path / "mergers"
    KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=8, merger_hidden_factor=0.125)
                       ).save_pretrained(mergers / "tiny-k8")  # fmt: skip
    monkeypatch.setenv("KTM_MERGERS", str(mergers))
    out = tmp_path / "r"
    args = ["--data", str(trees), "--k", "8", "--steps", "4", "--batch-size", "2", "--no-progress"]
    assert main(["train", "--model", str(tiny_model_dir), *args, "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["init_from"] == str(mergers / "tiny-k8")
    assert saved["ktm"]["merger_hidden_factor"] == 0.125  # recorded as the run took it
    assert "(K = 8, merger width 0.125;" in capsys.readouterr().err
    loaded = KTMModel.from_pretrained(out / "model", base_model=str(tiny_model_dir))
    assert loaded.merger.mlp[0].out_features == tiny_hidden(tiny_model_dir)  # h = int(c*K)*d
    # a width the user chose is kept: no general merger then, and the note says why
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(trees), "--k", "8",
                 "--merger-hidden-factor", "0.25", "--steps", "1", "--batch-size", "2",
                 "--no-progress", "--out", str(tmp_path / "w")]) == 0  # fmt: skip
    assert "hidden_factor 0.125 (yours 0.25)" in capsys.readouterr().err
    assert json.loads((tmp_path / "w" / "config.json").read_text())["init_from"] is None


def tiny_hidden(folder) -> int:
    return json.loads((folder / "config.json").read_text())["hidden_size"]


def test_init_from_none_opts_out(general_dir, tiny_model_dir, trees, tmp_path, monkeypatch):
    monkeypatch.setenv("KTM_MERGERS", str(general_dir))
    assert _train(tiny_model_dir, trees, tmp_path / "r", "--init-from", "none") == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["init_from"] == "none"
    assert (tmp_path / "r" / "pretrain").is_dir()


def test_a_general_merger_of_another_k_given_by_hand_is_refused(
    general_dir, tiny_model_dir, trees, tmp_path, capsys
):
    other = str(general_dir / "tiny-k4")
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(trees), "--k", "2",
                 "--steps", "1", "--batch-size", "2", "--no-progress", "--init-from", other,
                 "--out", str(tmp_path / "r")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "tiny-k4" in err and "k" in err and "Traceback" not in err


def test_bench_recipe_arm_uses_it_and_fresh_arms_do_not(
    general_dir, tiny_model_dir, trees, tmp_path, monkeypatch
):
    from ktm.config import KTMConfig as C
    from ktm.recipes.bench.arm_spec import arm_config
    from ktm.recipes.data import DataConfig
    from ktm.recipes.run_config import RunConfig
    from ktm.training import TrainConfig

    monkeypatch.setenv("KTM_MERGERS", str(general_dir))
    base = RunConfig(str(tiny_model_dir), C(), TrainConfig(), DataConfig())
    assert arm_config(base, "k4").resolved().init_from == str(general_dir / "tiny-k4")
    assert arm_config(base, "k4-fresh").resolved().start_from is None
    assert arm_config(base, "k2").resolved().init_from is None  # none for K = 2


def test_general_corpus_mixes_its_sources_and_is_deterministic(tmp_path):
    texts, counts = general_texts(chars_per_source=3000, data_dir=str(tmp_path))
    assert set(counts) == {"prose", "trees", "tables"}  # no data folder: no reviews or code
    assert all(2000 <= n <= 4000 for n in counts.values())
    assert texts == general_texts(chars_per_source=3000, data_dir=str(tmp_path))[0]
    assert any(t.startswith("Tree: +") for t in texts[:3])  # interleaved from the start
    reviews = tmp_path / "amazon_reviews"
    reviews.mkdir()
    (reviews / "train.jsonl").write_text(json.dumps({"text": "Great shoes, very comfy."}) + "\n")
    _, counts = general_texts(chars_per_source=3000, data_dir=str(tmp_path))
    assert counts["reviews"] == len("Great shoes, very comfy.")


def test_pretrain_on_the_general_corpus(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("KTM_DATA_DIR", raising=False)
    out = tmp_path / "g"
    assert main(["pretrain", "--model", str(tiny_model_dir), "--corpus", "general", "--k", "4",
                 "--steps", "2", "--batch-size", "2", "--chunk-tokens", "16", "--max-chunks",
                 "40", "--holdout-chunks", "4", "--k-warmup-steps", "0", "--no-progress",
                 "--out", str(out)]) == 0  # fmt: skip
    assert json.loads((out / "config.json").read_text())["corpus"] == "general"
    assert (out / "model" / "merger.safetensors").is_file()


def test_bundled_merger_is_bf16_and_task_runs_start_from_it(
    tiny_model_dir, trees, tmp_path, monkeypatch, script, capsys
):
    import sys

    from safetensors.torch import load_file

    run = tmp_path / "pre"
    assert main(["pretrain", "--model", str(tiny_model_dir), "--task", "tree", "--data", str(trees),
                 "--k", "4", "--steps", "2", "--batch-size", "2", "--chunk-tokens", "16",
                 "--holdout-chunks", "2", "--k-warmup-steps", "0", "--no-progress",
                 "--out", str(run)]) == 0  # fmt: skip
    then = tmp_path / "then"  # a second stage from the first: the provenance names both
    assert main(["pretrain", "--model", str(tiny_model_dir), "--task", "tree", "--data", str(trees),
                 "--k", "4", "--steps", "1", "--batch-size", "2", "--chunk-tokens", "16",
                 "--holdout-chunks", "2", "--init-from", str(run / "checkpoints" / "step-000002"),
                 "--no-progress", "--out", str(then)]) == 0  # fmt: skip
    into = tmp_path / "bundles"
    monkeypatch.setattr(sys, "argv", ["bundle", str(then), "tiny-k4", "--into", str(into)])
    script("bundle_general_merger").main()
    assert "MB" in capsys.readouterr().out
    weights = load_file(into / "tiny-k4" / "merger.safetensors")
    assert all(v.dtype == torch.bfloat16 for v in weights.values())
    adapter = json.loads((into / "tiny-k4" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_model_dir)  # the run's --model
    assert not (into / "tiny-k4" / "adapter" / "README.md").exists()
    provenance = json.loads((into / "tiny-k4" / "provenance.json").read_text())
    assert provenance["steps"] == 1
    (first,) = provenance["started_from"]
    assert first["step"] == 2 and first["config"]["train"]["steps"] == 2
    monkeypatch.setenv("KTM_MERGERS", str(into))
    assert _train(tiny_model_dir, trees, tmp_path / "r") == 0
    assert "starting from the general merger" in capsys.readouterr().err
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    from ktm.recipes.start import init_from

    init_from(model, into / "tiny-k4")
    expected = weights["mlp.0.weight"].float()
    assert torch.equal(model.merger.mlp[0].weight.detach(), expected)


def test_a_bundle_started_from_another_bundle_carries_its_provenance(
    tiny_model_dir, trees, tmp_path, monkeypatch, script
):
    """K = 8 from the K = 4 bundle's LoRA (``--init-lora-from``): the chain ends in its card."""
    import sys

    def pretrain(out, *extra):
        assert main(["pretrain", "--model", str(tiny_model_dir), "--task", "tree", "--data",
                     str(trees), "--steps", "1", "--batch-size", "2", "--chunk-tokens", "16",
                     "--holdout-chunks", "2", "--k-warmup-steps", "0", "--no-progress",
                     "--out", str(out), *extra]) == 0  # fmt: skip

    into = tmp_path / "bundles"
    pretrain(tmp_path / "k4", "--k", "4")
    monkeypatch.setattr(sys, "argv", ["bundle", str(tmp_path / "k4"), "tiny-k4", "--into",
                                      str(into)])  # fmt: skip
    script("bundle_general_merger").main()
    pretrain(tmp_path / "k8", "--k", "8", "--merger-hidden-factor", "0.125",
             "--init-lora-from", str(into / "tiny-k4"))  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["bundle", str(tmp_path / "k8" / "model"), "tiny-k8",
                                      "--into", str(into)])  # fmt: skip
    script("bundle_general_merger").main()
    provenance = json.loads((into / "tiny-k8" / "provenance.json").read_text())
    assert provenance["pretrain_config"]["ktm"]["k"] == 8
    (k4,) = provenance["started_from"]
    assert k4["source"] == str(into / "tiny-k4")
    assert k4["provenance"]["pretrain_config"]["ktm"]["k"] == 4
    # a bundle replaced by one trained on from it keeps the old one's card
    pretrain(tmp_path / "k4b", "--k", "4", "--init-from", str(into / "tiny-k4"))
    monkeypatch.setattr(sys, "argv", ["bundle", str(tmp_path / "k4b"), "tiny-k4", "--into",
                                      str(into)])  # fmt: skip
    script("bundle_general_merger").main()
    (old,) = json.loads((into / "tiny-k4" / "provenance.json").read_text())["started_from"]
    assert old["provenance"]["source"] == str(tmp_path / "k4")
