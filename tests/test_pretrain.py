"""Merger pre-training on plain text, and reuse of its output by task runs."""

import json

import pytest
import torch

from ktm import KTMConfig, KTMError, KTMModel
from ktm.cli import main
from ktm.recipes.pretrain_text import read_texts, text_chunks
from ktm.recipes.start import init_from

TEXT = "\n\n".join(
    f"Paragraph {i}: the quick brown fox jumps over the lazy dog number {i}." for i in range(60)
)


def _options(saved: dict, command: str) -> dict:
    """A saved config.json without the tag of the command that wrote it (checked here)."""
    assert saved["ktm_command"] == command
    return {k: v for k, v in saved.items() if k != "ktm_command"}


@pytest.fixture(scope="module")
def pretrained(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pre")
    (folder / "corpus.txt").write_text(TEXT)
    out = folder / "run"
    code = main(["pretrain", "--model", str(tiny_model_dir), "--text", str(folder / "corpus.txt"),
                 "--k", "4", "--chunk-tokens", "16", "--holdout-chunks", "4", "--steps", "20",
                 "--batch-size", "4", "--lr", "3e-3", "--eval-every", "10", "--out", str(out),
                 "--k-warmup-steps", "3", "--no-progress"])  # fmt: skip
    assert code == 0
    return out


def test_read_texts_and_chunks(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    (tmp_path / "a.jsonl").write_text('{"text": "hello world"}\n\n{"text": "again"}\n')
    (tmp_path / "b.txt").write_text("one\n\ntwo")
    assert read_texts([tmp_path / "a.jsonl", tmp_path / "b.txt"]) == [
        "hello world", "again", "one", "two"]  # fmt: skip
    (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(KTMError, match="bad.jsonl:1"):
        read_texts([tmp_path / "bad.jsonl"])
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    chunks = text_chunks(tok, [TEXT], chunk_tokens=16, max_chunks=5)
    assert len(chunks) == 5 and all(chunks)


def test_pretraining_lowers_reconstruction_loss(pretrained):
    metrics = json.loads((pretrained / "metrics.json").read_text())
    evals = [e["reconstruction_nll"] for e in metrics["evals"]]
    assert len(evals) == 2 and evals[-1] < evals[0]
    assert (pretrained / "model" / "merger.safetensors").is_file()


def test_pretraining_warms_up_at_a_smaller_k(pretrained, tiny_model_dir):
    """K = 4 pre-training first runs at K = 2 (its own resumable run folder, constant rate)
    and starts from that run's LoRA with a fresh merger."""
    from ktm.recipes.pretrain import PretrainConfig, k_ladder

    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert [w["k"] for w in metrics["k_warmup"]] == [2] and metrics["k_warmup"][0]["steps"] == 3
    assert metrics["k_warmup"][0]["reconstruction_nll"] > 0
    sub = json.loads((pretrained / "warmup-k2" / "config.json").read_text())
    assert sub["ktm"]["k"] == 2 and sub["train"]["schedule"] == "constant"
    assert sub["k_warmup"] == [] and sub["train"]["steps"] == 3
    saved = json.loads((pretrained / "config.json").read_text())
    assert saved["k_warmup"] == [2]
    assert PretrainConfig.from_dict(saved).to_dict() == _options(saved, "pretrain")
    assert k_ladder(2) == [] and k_ladder(4) == [2] and k_ladder(8) == [2, 4] and k_ladder(3) == [2]
    # The LoRA of a K = 2 model goes into a K = 4 one; its merger stays as initialised.
    warm = KTMModel.from_pretrained(pretrained / "warmup-k2" / "model")
    torch.manual_seed(5)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    merger_before = {k: v.clone() for k, v in model.merger.state_dict().items()}
    init_from(model, pretrained / "warmup-k2" / "model", lora_only=True)
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    warm_lora = {n: p for n, p in warm.named_parameters() if "lora_" in n}
    assert lora.keys() == warm_lora.keys() and lora
    assert all(torch.equal(lora[n], warm_lora[n]) for n in lora)
    assert all(torch.equal(v, merger_before[k]) for k, v in model.merger.state_dict().items())
    with pytest.raises(KTMError, match="k=4"):  # the whole model needs the same K
        init_from(model, pretrained / "warmup-k2" / "model")
    wider = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4, lora_r=16))
    with pytest.raises(KTMError, match="lora_r"):
        init_from(wider, pretrained / "warmup-k2" / "model", lora_only=True)


def _count_model_builds(monkeypatch) -> tuple[list[int], list[int]]:
    """Patch ``KTMModel.from_base`` to count builds and the most models held at once; returns
    ``(most, builds)``, one-element lists filled in as the run goes."""
    import gc
    import weakref

    live, most, builds = weakref.WeakSet(), [0], [0]
    real_build = KTMModel.from_base

    def build(*a, **kw):
        gc.collect()  # a finished run's model is unreferenced; drop it before counting
        model = real_build(*a, **kw)
        live.add(model)
        most[0], builds[0] = max(most[0], len(live)), builds[0] + 1
        return model

    monkeypatch.setattr(KTMModel, "from_base", build)
    return most, builds


def test_warm_up_ladder_reads_the_text_once_and_holds_one_model(
    tiny_model_dir, tmp_path, monkeypatch
):
    """K = 8 warms up at 2 then 4: the text is read and cut once for all three runs, and
    each run's model is built after the one before it is done with (one base model at once)."""
    import ktm.recipes.pretrain_text as pretrain

    reads, real_read = [], pretrain.read_texts

    def read(*a, **kw):
        reads.append(a)
        return real_read(*a, **kw)

    monkeypatch.setattr(pretrain, "read_texts", read)
    most, _ = _count_model_builds(monkeypatch)
    (tmp_path / "corpus.txt").write_text(TEXT)
    code = main(["pretrain", "--model", str(tiny_model_dir), "--text", str(tmp_path / "corpus.txt"),
                 "--k", "8", "--chunk-tokens", "16", "--holdout-chunks", "4", "--steps", "2",
                 "--batch-size", "2", "--k-warmup-steps", "1", "--out", str(tmp_path / "run"),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [w["k"] for w in metrics["k_warmup"]] == [2, 4] and metrics["steps"] == 2
    assert len(reads) == 1 and most[0] == 1


def _one_step_from(pretrained, tiny_model_dir, tmp_path, k: str, option: str):
    """One step at lr 1e-9 of a K = ``k`` pre-training started ``option`` (``--init-from`` or
    ``--init-lora-from``) the ``pretrained`` run's model; returns (the command without the
    option, the run folder, its saved config), checked to record the start and no warm-ups."""
    (tmp_path / "corpus.txt").write_text(TEXT)
    base = ["pretrain", "--model", str(tiny_model_dir), "--text", str(tmp_path / "corpus.txt"),
            "--k", k, "--chunk-tokens", "16", "--holdout-chunks", "4", "--steps", "1",
            "--batch-size", "2", "--lr", "1e-9", "--no-progress"]  # fmt: skip
    out = tmp_path / "run"
    assert main(base + [option, str(pretrained / "model"), "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    key = option.removeprefix("--").replace("-", "_")
    assert saved[key] == str(pretrained / "model") and saved["k_warmup"] == []
    return base, out, saved


def test_pretraining_starts_its_lora_from_a_smaller_k_run(pretrained, tiny_model_dir, tmp_path):
    """``--init-lora-from`` a finished K = 4 pre-training: a K = 8 run with no warm-ups whose
    LoRA starts from that run's; the option round-trips; a missing path or warm-ups asked for
    beside it are refused before anything is written."""
    from ktm.recipes.pretrain import PretrainConfig

    base, out, saved = _one_step_from(pretrained, tiny_model_dir, tmp_path, "8", "--init-lora-from")
    assert PretrainConfig.from_dict(saved).to_dict() == _options(saved, "pretrain")
    assert not list(out.glob("warmup-k*"))
    theirs = dict(KTMModel.from_pretrained(pretrained / "model").lm.named_parameters())
    mine = KTMModel.from_pretrained(out / "model")
    lora = {n: p for n, p in mine.lm.named_parameters() if "lora_" in n}
    # one step at lr 1e-9: the LoRA is still the K = 4 run's
    assert lora and all(torch.allclose(p, theirs[n], atol=1e-6) for n, p in lora.items())
    missing = main(
        base + ["--init-lora-from", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]
    )
    both = main(base + ["--init-lora-from", str(pretrained / "model"), "--k-warmup", "2,4",
                        "--out", str(tmp_path / "b")])  # fmt: skip
    assert missing == 2 and both == 2
    assert not (tmp_path / "m").exists() and not (tmp_path / "b").exists()


def test_pretraining_continues_from_a_whole_pretrained_model(pretrained, tiny_model_dir, tmp_path):
    """``--init-from`` a finished K = 4 pre-training: merger and LoRA both start from it (no
    warm-ups); a model of another shape, or both starts at once, are refused."""
    base, out, saved = _one_step_from(pretrained, tiny_model_dir, tmp_path, "4", "--init-from")
    theirs = KTMModel.from_pretrained(pretrained / "model")
    mine = KTMModel.from_pretrained(out / "model")
    ours, source = dict(mine.named_parameters()), dict(theirs.named_parameters())
    learnt = [n for n in source if n.startswith("merger.") or "lora_" in n]
    assert any(n.startswith("merger.") for n in learnt) and any("lora_" in n for n in learnt)
    # one step at lr 1e-9: merger and LoRA are still the pre-training's
    assert all(torch.allclose(ours[n], source[n], atol=1e-6) for n in learnt)
    wider = main(base + ["--init-from", str(pretrained / "model"), "--lora-r", "16",
                         "--out", str(tmp_path / "w")])  # fmt: skip
    both = main(base + ["--init-from", str(pretrained / "model"), "--init-lora-from",
                        str(pretrained / "model"), "--out", str(tmp_path / "b")])  # fmt: skip
    assert wider == 2 and both == 2 and not (tmp_path / "b").exists()


def test_chunks_take_lengths_across_a_range(tiny_model_dir):
    """One fixed length is all a merger pre-trained on it reads, so chunk lengths are drawn
    from [min, max] (seeded); the default minimum is a quarter of the maximum."""
    from transformers import AutoTokenizer

    from ktm.recipes.pretrain import PretrainConfig
    from ktm.training import TrainConfig

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = [TEXT] * 4

    def lengths(chunks):
        return [len(tok(c, add_special_tokens=False)["input_ids"]) for c in chunks]

    fixed = lengths(text_chunks(tok, texts, chunk_tokens=24, max_chunks=40))
    spread = text_chunks(tok, texts, chunk_tokens=24, max_chunks=40, min_tokens=6, seed=3)
    spread_lengths = lengths(spread)
    # decoding and stripping may shift a piece by a few tokens; the drawn lengths span more
    assert max(fixed) - min(fixed) <= 5
    assert max(spread_lengths) - min(spread_lengths) >= 12
    assert spread == text_chunks(tok, texts, chunk_tokens=24, max_chunks=40, min_tokens=6, seed=3)
    with pytest.raises(KTMError, match="2 <= min <= max"):
        text_chunks(tok, texts, chunk_tokens=8, max_chunks=4, min_tokens=9)
    cfg = PretrainConfig(model="m", ktm=KTMConfig(k=4), train=TrainConfig(), texts=["t.txt"])
    assert cfg.chunk_tokens == 64 and cfg.chunk_min_tokens == 16
    old = {k: v for k, v in cfg.to_dict().items() if k != "chunk_min_tokens"}
    assert PretrainConfig.from_dict(old).chunk_min_tokens == 64  # runs written before: one length
    with pytest.raises(KTMError, match="chunk_min_tokens must be in"):
        PretrainConfig(model="m", ktm=KTMConfig(k=4), train=TrainConfig(), texts=["t.txt"],
                       chunk_min_tokens=65)  # fmt: skip


@pytest.mark.parametrize(
    "warmup, steps, match",
    [([4], 40, "below k=4"), ([1], 40, "from 2"), ([2, 2], 40, "increasing"), ([2], 0, "needs")],
)
def test_k_warmup_is_validated(warmup, steps, match):
    from ktm.recipes.pretrain import PretrainConfig
    from ktm.training import TrainConfig

    with pytest.raises(KTMError, match=match):
        PretrainConfig(model="m", ktm=KTMConfig(k=4), train=TrainConfig(), texts=["t.txt"],
                       k_warmup=warmup, k_warmup_steps=steps)  # fmt: skip


@pytest.mark.parametrize("ktm", [{"k": 1}, {"k": 4, "merger": "mean"}])
def test_pretraining_needs_an_mlp_merger_at_k_above_1(ktm, tiny_model_dir, tmp_path, capsys):
    from ktm.recipes.pretrain import PretrainConfig
    from ktm.training import TrainConfig

    with pytest.raises(KTMError, match="nothing to pre-train"):
        PretrainConfig(model="m", ktm=KTMConfig(**ktm), train=TrainConfig(), texts=["t.txt"])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    merger, out = ktm.get("merger", "mlp"), str(tmp_path / "run")
    args = ["pretrain", "--model", str(tiny_model_dir), "--text", str(corpus), "--k",
            str(ktm["k"]), "--merger", merger, "--out", out]  # fmt: skip
    assert main(args) == 2 and "nothing to pre-train" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_pretraining_resumes_after_its_warm_up(pretrained, tmp_path):
    """A run stopped after its warm-up resumes at K without redoing the warm-up."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(pretrained, run)
    for name in ("checkpoints", "model", "metrics.json", "train_log.jsonl", "evals.json"):
        path = run / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    before = (run / "warmup-k2" / "metrics.json").read_text()
    # Only the folder is given: the options are read back from its config.json.
    assert main(["pretrain", "--out", str(run), "--no-progress", "--resume"]) == 0
    assert (run / "warmup-k2" / "metrics.json").read_text() == before
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["k_warmup"][0]["k"] == 2


def test_task_run_starts_from_pretrained_merger(pretrained, tiny_model_dir, tmp_path):
    torch.manual_seed(1)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    init_from(model, pretrained)
    saved = KTMModel.from_pretrained(pretrained / "model")
    for key, value in saved.merger.state_dict().items():
        assert torch.equal(model.merger.state_dict()[key], value)
    prompts = ["some prompt to compress here"]
    assert torch.allclose(model.next_token_logits(prompts), saved.next_token_logits(prompts))


def test_pretrained_merger_refused_for_other_k_or_base(
    pretrained, tiny_model_dir, other_shape_base
):
    other_k = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=2))
    with pytest.raises(KTMError, match="k=4"):
        init_from(other_k, pretrained)
    other_base = KTMModel.from_model(*other_shape_base, KTMConfig(k=4))
    with pytest.raises(KTMError, match="hidden_size"):
        init_from(other_base, pretrained)
    other_positions = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4, positions="spread"))
    with pytest.raises(KTMError, match="positions='compact'"):
        init_from(other_positions, pretrained)


def test_cli_train_init_from(pretrained, tiny_model_dir, tmp_path):
    data = tmp_path / "d"
    assert (
        main(["data", "tree", "--train-trees", "10", "--test-trees", "3", "--out", str(data)]) == 0
    )
    out = tmp_path / "run"
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "4",
                 "--steps", "1", "--batch-size", "2", "--init-from", str(pretrained),
                 "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    assert json.loads((out / "config.json").read_text())["init_from"] == str(pretrained)
    bad = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "2",
           "--init-from", str(pretrained), "--out", str(tmp_path / "r2")]  # fmt: skip
    assert main(bad) == 2
    assert not (tmp_path / "r2").exists()  # nothing half-written


def test_init_lora_from_takes_the_lora_of_a_smaller_k(pretrained, tiny_model_dir, tmp_path):
    """A curriculum over K: the K = 4 run takes its merger from --init-from and its LoRA from
    a K = 2 model (here the pre-training's own K = 2 warm-up); the run config round-trips."""
    from ktm.recipes.run_config import RunConfig
    from ktm.recipes.train import _build_models

    k2, k4 = pretrained / "warmup-k2" / "model", pretrained / "model"
    data = tmp_path / "d"
    assert main(["data", "tree", "--train-trees", "10", "--test-trees", "3",
                 "--out", str(data)]) == 0  # fmt: skip
    out = tmp_path / "run"
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "4",
                 "--steps", "1", "--batch-size", "2", "--init-from", str(pretrained),
                 "--init-lora-from", str(k2), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["init_lora_from"] == str(k2) and saved["train"]["lr"] == 3e-4
    assert not (out / "pretrain").exists()  # both parts start trained: no built-in phase
    cfg = RunConfig.from_dict(saved)
    assert cfg.to_dict() == _options(saved, "train")
    model, _ = _build_models(cfg)
    merger4, lora2 = KTMModel.from_pretrained(k4), KTMModel.from_pretrained(k2)
    for key, value in merger4.merger.state_dict().items():
        assert torch.equal(model.merger.state_dict()[key], value)
    lora = {n: p for n, p in model.lm.named_parameters() if "lora_" in n}
    theirs = dict(lora2.lm.named_parameters())
    assert lora and all(torch.equal(p, theirs[n]) for n, p in lora.items())
    assert not all(torch.equal(p, dict(merger4.lm.named_parameters())[n]) for n, p in lora.items())
    no_lora = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "4",
               "--lora-r", "0", "--init-lora-from", str(k2),
               "--out", str(tmp_path / "r0")]  # fmt: skip
    assert main(no_lora) == 2 and not (tmp_path / "r0").exists()


def test_bench_pretrained_arm_starts_from_init_and_others_fresh(
    pretrained, tiny_model_dir, tmp_path
):
    out = tmp_path / "b"
    args = ["bench", "tree", "--model", str(tiny_model_dir), "--arms", "k4,k4-pre,k1",
            "--init-from", str(pretrained), "--steps", "1", "--batch-size", "2",
            "--train-trees", "6", "--test-trees", "2", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    inits = {a: json.loads((out / a / "config.json").read_text())["init_from"]
             for a in ("k4", "k4-pre", "k1")}  # fmt: skip
    assert inits == {"k4": None, "k4-pre": str(pretrained), "k1": None}
    kinds = {r["arm"]: r["kind"] for r in json.loads((out / "results.json").read_text())["arms"]}
    assert kinds["k4-pre"] == "merge-pretrained"
    no_init = [a for a in args if a not in ("--init-from", str(pretrained))]
    assert main([*no_init[:-3], "--out", str(tmp_path / "c")]) == 2


def test_a_context_merger_starts_from_a_plain_pretrained_one(pretrained, tiny_model_dir):
    """``merger_context`` > 0 can start from a merger pre-trained without context (the extra
    weights start at zero: same outputs, then trainable); never the other way round, and a
    training checkpoint must match exactly."""
    plain = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    init_from(plain, pretrained)
    wide = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4, merger_context=4))
    init_from(wide, pretrained)
    prompts = ["the quick brown fox jumps over the lazy dog number 7"]
    torch.testing.assert_close(wide.next_token_logits(prompts), plain.next_token_logits(prompts))
    with pytest.raises(KTMError, match="merger_context"):
        init_from(wide, sorted((pretrained / "checkpoints").glob("step-*"))[-1])
    wide_dir = pretrained.parent / "wide"
    wide.save_pretrained(wide_dir)
    assert KTMModel.from_pretrained(wide_dir).config.merger_context == 4
    with pytest.raises(KTMError, match="merger_context=4"):
        init_from(KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4)), wide_dir)


def test_init_from_a_training_checkpoint_of_the_run(pretrained, tiny_model_dir):
    step = sorted((pretrained / "checkpoints").glob("step-*"))[-1]
    from_ckpt = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    init_from(from_ckpt, step)
    from_model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    init_from(from_model, pretrained)
    prompts = ["the quick brown fox jumps over the lazy dog"]
    assert torch.allclose(
        from_ckpt.next_token_logits(prompts), from_model.next_token_logits(prompts)
    )
    with pytest.raises(KTMError, match="k=4"):
        init_from(KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=2)), step)


def test_pretrain_on_a_tasks_training_prompts(tiny_model_dir, tmp_path, capsys):
    """``--task`` reads the task's training prompts as the text; the data options round-trip
    through config.json, so the run resumes; ``--text`` adds to them; no source is refused."""
    from ktm.recipes.pretrain import PretrainConfig

    out = tmp_path / "run"
    args = ["pretrain", "--model", str(tiny_model_dir), "--task", "tree", "--train-trees", "40",
            "--k", "4", "--chunk-tokens", "16", "--holdout-chunks", "4", "--steps", "4",
            "--batch-size", "4", "--lr", "1e-2", "--eval-every", "2", "--k-warmup-steps", "2",
            "--no-progress"]  # fmt: skip
    assert main(args + ["--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["data"]["task"] == "tree" and saved["data"]["train_trees"] == 40
    assert PretrainConfig.from_dict(saved).to_dict() == _options(saved, "pretrain")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chunks"] > 20  # 40 small trees' prompts hold well over 20 chunks of 16
    # With the question kept as tokens only the trees are merged, so only they are the text
    # (each tree once, though balanced data repeats it): far fewer chunks.
    split = tmp_path / "split"
    assert main(args + ["--split-question", "--out", str(split)]) == 0
    trees_only = json.loads((split / "metrics.json").read_text())["chunks"]
    assert 0 < trees_only < metrics["chunks"] / 3
    assert main(args + ["--out", str(out), "--resume"]) == 0
    capsys.readouterr()
    (tmp_path / "x.txt").write_text(TEXT)
    assert main(args + ["--text", str(tmp_path / "x.txt"), "--out", str(tmp_path / "b")]) == 0
    both = json.loads((tmp_path / "b" / "metrics.json").read_text())["chunks"]
    assert both > metrics["chunks"] + 20  # TEXT alone holds well over 20 chunks of 16
    no_source = [a for a in args if a not in ("--task", "tree")]
    assert main(no_source + ["--out", str(tmp_path / "c")]) == 2
    assert "--task" in capsys.readouterr().err


def _tree_data(tmp_path):
    data = tmp_path / "d"
    assert main(["data", "tree", "--train-trees", "30", "--test-trees", "3", "--out",
                 str(data)]) == 0  # fmt: skip
    return data


def test_default_recipe_pretrains_on_the_tasks_prompts_first(tiny_model_dir, tmp_path, capsys):
    """K > 1 with a fresh MLP merger: ``ktm train`` pre-trains merger + LoRA on the task's
    training prompts (as many steps as the task by default) in <run>/pretrain, then trains
    the task from it; the unset option round-trips as unset; resume skips the finished phase."""
    from ktm.recipes.run_config import RunConfig

    data, out = _tree_data(tmp_path), tmp_path / "run"
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "4",
            "--steps", "3", "--batch-size", "2", "--eval-every", "0",
            "--pretrain-k-warmup-steps", "2", "--no-progress"]  # fmt: skip
    assert main(args + ["--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "pre-training merger + LoRA on the task's prompts for 3 steps" in err
    assert "warm-up: reconstruction at K = 2 for 2 steps" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pretrain"]["steps"] == 3 and metrics["pretrain"]["reconstruction_nll"] > 0
    pre = json.loads((out / "pretrain" / "config.json").read_text())
    assert pre["data"]["data_dir"] == str(data) and pre["chunk_tokens"] == 32
    assert pre["k_warmup"] == [2] and pre["k_warmup_steps"] == 2
    assert metrics["pretrain"]["steps"] == 3 and (out / "pretrain" / "warmup-k2" / "model").is_dir()
    saved = json.loads((out / "config.json").read_text())
    assert saved["pretrain_steps"] is None
    assert RunConfig.from_dict(saved).to_dict() == _options(saved, "train")
    # The task run started from the pre-trained merger, not from mean pooling (zero last layer).
    trained = KTMModel.from_pretrained(out / "pretrain" / "model")
    assert trained.merger.mlp[-1].weight.abs().sum() > 0
    # The task phase fine-tunes at the lower rate; the pre-training phase ran at 1e-3.
    assert saved["train"]["lr"] == 3e-4 and saved["train"]["reconstruction_weight"] == 0
    assert pre["train"]["lr"] == 1e-3
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert max(row["lr"] for row in log) <= 3e-4
    assert main(args + ["--out", str(out), "--resume"]) == 0
    assert "pre-training" not in capsys.readouterr().err

    fresh = tmp_path / "fresh"
    assert main(args + ["--pretrain-steps", "0", "--out", str(fresh)]) == 0
    assert not (fresh / "pretrain").exists()
    assert "pretrain" not in json.loads((fresh / "metrics.json").read_text())
    assert json.loads((fresh / "config.json").read_text())["train"]["lr"] == 1e-3


def test_default_recipe_holds_one_base_model_at_a_time(tiny_model_dir, tmp_path, monkeypatch):
    """The task's model, built first to check the data, is let go while the built-in phase
    (warm-up at K = 2, then K = 4) builds its own, and rebuilt after it: never two at once."""
    most, builds = _count_model_builds(monkeypatch)
    data, out = _tree_data(tmp_path), tmp_path / "run"
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "4",
            "--steps", "2", "--batch-size", "2", "--eval-every", "0",
            "--pretrain-k-warmup-steps", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert builds[0] == 4 and most[0] == 1  # task check, K = 2 warm-up, K = 4 phase, task
    assert json.loads((out / "metrics.json").read_text())["pretrain"]["steps"] == 2


def test_pretrain_text_adds_to_the_default_recipes_text(tiny_model_dir, tmp_path, capsys):
    """``--pretrain-text`` feeds the built-in phase more text after the task's prompts; a
    phase that would read its text many times says so; the option is refused (exit 2) where
    there is no phase, and a missing file fails before the run folder is written."""
    data = _tree_data(tmp_path)
    corpus = tmp_path / "more.txt"
    corpus.write_text("\n\n".join([TEXT] * 3))
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--k", "4",
            "--steps", "3", "--batch-size", "8", "--eval-every", "0", "--pretrain-steps", "100",
            "--pretrain-k-warmup-steps", "0", "--no-progress"]  # fmt: skip
    assert main(args + ["--out", str(tmp_path / "own")]) == 0
    assert "reads each of its" in capsys.readouterr().err  # 30 small trees, 100 steps of 8
    assert main(args + ["--pretrain-text", str(corpus), "--out", str(tmp_path / "more")]) == 0
    assert "reads each of its" not in capsys.readouterr().err
    own = json.loads((tmp_path / "own" / "metrics.json").read_text())["pretrain"]["chunks"]
    more = json.loads((tmp_path / "more" / "metrics.json").read_text())
    assert more["pretrain"]["chunks"] > own + 60
    saved = json.loads((tmp_path / "more" / "config.json").read_text())
    assert saved["pretrain_text"] == [str(corpus)]
    pre = json.loads((tmp_path / "more" / "pretrain" / "config.json").read_text())
    assert pre["texts"] == [str(corpus)] and pre["data"]["data_dir"] == str(data)
    missing = tmp_path / "missing.txt"
    assert main(args + ["--pretrain-text", str(missing), "--out", str(tmp_path / "m")]) == 2
    assert str(missing) in capsys.readouterr().err and not (tmp_path / "m").exists()
    no_phase = args + ["--pretrain-steps", "0", "--pretrain-text", str(corpus)]
    assert main(no_phase + ["--out", str(tmp_path / "n")]) == 2
    assert "pretrain_text" in capsys.readouterr().err


@pytest.mark.parametrize(
    "ktm, extra, lr, anneal, pre",
    [
        ({"k": 4}, {}, 3e-4, 0, (300, 1e-3)),  # built-in pre-training phase, then fine-tuning
        ({"k": 4}, {"pretrain_steps": 0}, 1e-3, 0, (0, 1e-3)),  # the task alone
        ({"k": 4}, {"init_from": "pre/model"}, 3e-4, 150, (0, 5e-4)),  # a saved merger
        ({"k": 4}, {"init_from": "pre/model", "train": {"steps": 1000}}, 3e-4, 200, (0, 5e-4)),
        (
            {"k": 4},
            {"init_from": "pre/model", "train": {"raw_anneal_steps": 0}},
            3e-4,
            0,
            (0, 5e-4),
        ),
        ({"k": 4}, {"init_from": "pre/model", "pretrain_steps": 20}, 3e-4, 150, (20, 5e-4)),
        # the question kept raw: no curriculum, a higher rate
        ({"k": 4}, {"init_from": "p/m", "data": {"split_question": True}}, 6e-4, 0, (0, 5e-4)),
        ({"k": 4}, {"init_from": "p/m", "data": {"suffix_template": "{q}"}}, 6e-4, 0, (0, 5e-4)),
        ({"k": 1}, {"data": {"split_question": True}}, 1e-3, 0, (0, 1e-3)),  # nothing merged
        ({"k": 1}, {}, 1e-3, 0, (0, 1e-3)),  # nothing merged
        ({"k": 4, "merger": "mean"}, {}, 1e-3, 0, (0, 1e-3)),  # nothing to pre-train
        ({"k": 4}, {"train": {"lr": 5e-4}}, 5e-4, 0, (300, 1e-3)),  # asked for
    ],
)
def test_recipe_resolves_the_task_learning_rate_and_curriculum(ktm, extra, lr, anneal, pre):
    from ktm.recipes.data import DataConfig
    from ktm.recipes.run_config import RunConfig
    from ktm.training import TrainConfig

    extra = dict(extra)
    train = TrainConfig(**{"steps": 300, **extra.pop("train", {})})
    data = DataConfig(**extra.pop("data", {}))
    cfg = RunConfig("m", KTMConfig(**ktm), train, data, **extra).resolved()
    assert cfg.train.lr == lr and cfg.train.reconstruction_weight == 0
    assert cfg.train.raw_anneal_steps == anneal
    assert (cfg.resolved_pretrain_steps, cfg.pretrain_lr) == pre
    assert RunConfig.from_dict(cfg.to_dict()).resolved().to_dict() == cfg.to_dict()
    with pytest.raises(KTMError, match="pretrain_lr"):
        RunConfig("m", KTMConfig(**ktm), train, DataConfig(), pretrain_lr=0.0)


def test_pretrain_steps_where_there_is_nothing_to_pretrain(tiny_model_dir, tmp_path, capsys):
    data = _tree_data(tmp_path)
    base = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--steps", "1",
            "--batch-size", "2", "--no-progress"]  # fmt: skip
    for extra in (["--k", "1"], ["--k", "4", "--merger", "mean"]):
        assert main(base + extra + ["--pretrain-steps", "5", "--out", str(tmp_path / "x")]) == 2
        assert "pretrain_steps needs K > 1" in capsys.readouterr().err
    # Unset, it simply does not apply: K = 1 trains at once.
    assert main(base + ["--k", "1", "--out", str(tmp_path / "k1")]) == 0
    assert not (tmp_path / "k1" / "pretrain").exists()


def test_too_little_text_skips_the_default_pretraining_but_not_an_explicit_one(
    tiny_model_dir, tmp_path, capsys
):
    rows = tmp_path / "t.jsonl"
    rows.write_text("".join(json.dumps({"q": f"is {w} big", "a": "yes" if i % 2 else "no"}) + "\n"
                            for i, w in enumerate(["ants", "whales"])))  # fmt: skip
    base = ["train", "--model", str(tiny_model_dir), "--task", "custom", "--train-file",
            str(rows), "--test-file", str(rows), "--template", "{q}", "--answer-field", "a",
            "--labels", "yes,no", "--k", "4", "--steps", "1", "--batch-size", "2",
            "--no-progress"]  # fmt: skip
    assert main(base + ["--out", str(tmp_path / "auto")]) == 0
    assert "no pre-training" in capsys.readouterr().err
    assert "skipped" in json.loads((tmp_path / "auto" / "metrics.json").read_text())["pretrain"]
    assert main(base + ["--pretrain-steps", "2", "--out", str(tmp_path / "asked")]) == 2
    assert "tokens" in capsys.readouterr().err


def test_continuation_examples_mix_evenly():
    from ktm.model import RECONSTRUCT_MARKER
    from ktm.recipes.pretrain_text import reconstruction_examples

    chunks = [f"chunk {i}" for i in range(10)]
    plain = reconstruction_examples(chunks)
    assert all(e.answer == e.prompt and e.suffix == RECONSTRUCT_MARKER for e in plain)
    mixed = reconstruction_examples(chunks, continuation=0.5)
    cont = [i for i, e in enumerate(mixed) if e.answer != e.prompt]
    assert cont == [0, 2, 4, 6, 8]
    assert all(mixed[i].answer == chunks[i + 1] and not mixed[i].suffix for i in cont)
    assert sum(e.answer != e.prompt for e in reconstruction_examples(chunks, 1.0)) == 9
