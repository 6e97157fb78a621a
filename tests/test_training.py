"""The training engine on a tiny model: learning, exact resume, two processes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from ktm import KTMConfig, KTMModel
from ktm.errors import KTMError
from ktm.training import Example, TrainConfig, train
from ktm.training.data import SampleOrder

EXAMPLES = [
    Example(f"Item {i}: " + "word " * (i % 7 + 1), "true" if i % 2 else "false") for i in range(40)
]


def _model(tiny_model_dir, **cfg):
    torch.manual_seed(0)
    return KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4, **cfg))


def _cfg(**kw):
    base = dict(steps=8, batch_size=4, lr=5e-3, warmup_steps=1, save_every=2, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_sample_order_is_reproducible_and_covers_epochs():
    order = SampleOrder(10, seed=3)
    first = order.take(0, 10)
    assert sorted(first) == list(range(10))
    assert SampleOrder(10, seed=3).take(5, 10) == first[5:] + order.take(10, 5)


@pytest.mark.parametrize("context", [0, 4])
def test_loss_decreases(tiny_model_dir, tmp_path, context):
    model = _model(tiny_model_dir, merger_context=context)
    result = train(model, EXAMPLES, _cfg(steps=30, lr=2e-2, save_every=0), tmp_path / "run")
    losses = [r["loss"] for r in result.history]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    saved = tmp_path / "run" / "model"
    assert KTMModel.from_pretrained(saved).config.merger_context == context


class _Crash(Exception):
    pass


def test_interrupted_then_resumed_gives_same_loss_curve(tiny_model_dir, tmp_path):
    full = train(_model(tiny_model_dir), EXAMPLES, _cfg(), tmp_path / "full")

    def crash_at_5(record):
        if record["step"] == 5:
            raise _Crash

    with pytest.raises(_Crash):
        train(_model(tiny_model_dir), EXAMPLES, _cfg(), tmp_path / "cut", on_step=crash_at_5)
    # a second model built from scratch continues from the step-4 checkpoint
    resumed = train(_model(tiny_model_dir), EXAMPLES, _cfg(), tmp_path / "cut", resume=True)
    a = [r["loss"] for r in full.history]
    b = [r["loss"] for r in resumed.history]
    assert len(b) == len(a) == 8
    assert a == pytest.approx(b, abs=1e-6)
    wa = KTMModel.from_pretrained(tmp_path / "full" / "model").merger.state_dict()
    wb = KTMModel.from_pretrained(tmp_path / "cut" / "model").merger.state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_existing_run_needs_resume(tiny_model_dir, tmp_path):
    train(_model(tiny_model_dir), EXAMPLES, _cfg(steps=2), tmp_path / "run")
    with pytest.raises(KTMError, match="--resume"):
        train(_model(tiny_model_dir), EXAMPLES, _cfg(steps=2), tmp_path / "run")


def test_grad_accum_matches_full_batch(tiny_model_dir, tmp_path):
    a = train(_model(tiny_model_dir, lora_dropout=0.0), EXAMPLES, _cfg(steps=3), tmp_path / "a")
    b = train(
        _model(tiny_model_dir, lora_dropout=0.0),
        EXAMPLES,
        _cfg(steps=3, grad_accum=2),
        tmp_path / "b",
    )
    assert [r["loss"] for r in a.history] == pytest.approx([r["loss"] for r in b.history], abs=1e-4)


def test_bad_train_config():
    with pytest.raises(KTMError):
        TrainConfig(batch_size=6, grad_accum=4)
    with pytest.raises(KTMError):
        TrainConfig(lr=-1.0)
    with pytest.raises(KTMError):
        TrainConfig(schedule="step")


def test_two_process_accelerate_run_matches_one_process(tiny_model_dir, tmp_path):
    """`accelerate launch --num_processes 2` on CPU: same losses as one process (no dropout)."""
    data = tmp_path / "data"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ktm.cli",
            "data",
            "tree",
            "--train-trees",
            "30",
            "--test-trees",
            "5",
            "--out",
            str(data),
        ],
        check=True,
        env=env,
    )
    args = [
        "train",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--k",
        "3",
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--lora-dropout",
        "0",
        "--no-progress",
    ]
    subprocess.run(
        [sys.executable, "-m", "ktm.cli", *args, "--out", str(tmp_path / "one")],
        check=True,
        env=env,
        capture_output=True,
    )
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "ktm.cli",
        *args,
        "--out",
        str(tmp_path / "two"),
    ]
    proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert two["processes"] == 2 and one["processes"] == 1
    losses = [
        [json.loads(line)["loss"] for line in open(tmp_path / run / "train_log.jsonl")]
        for run in ("one", "two")
    ]
    assert losses[0] == pytest.approx(losses[1], abs=1e-4)


def test_frozen_model_is_refused(tiny_model_dir, tmp_path):
    model = _model(tiny_model_dir)
    model.save_pretrained(tmp_path / "m")
    frozen = KTMModel.from_pretrained(tmp_path / "m")
    with pytest.raises(KTMError, match="trainable=True"):
        train(frozen, EXAMPLES, _cfg(steps=1), tmp_path / "run")
    again = KTMModel.from_pretrained(tmp_path / "m", trainable=True)
    assert train(again, EXAMPLES, _cfg(steps=1), tmp_path / "run").steps_done == 1


def test_reconstruction_objective_learns(tiny_model_dir, tmp_path):
    cfg = _cfg(steps=25, lr=2e-2, save_every=0, reconstruction_weight=1.0)
    result = train(_model(tiny_model_dir), EXAMPLES, cfg, tmp_path / "run")
    recon = [r["reconstruction_loss"] for r in result.history]
    assert sum(recon[-5:]) / 5 < sum(recon[:5]) / 5 - 0.5
    saved = json.loads(
        (tmp_path / "run" / "checkpoints").joinpath("step-000025", "state.json").read_text()
    )
    assert saved["history"][-1]["reconstruction_loss"] == recon[-1]


def test_reconstruction_targets_repeat_the_prompt(tiny_model_dir):
    model = _model(tiny_model_dir)
    ids, _ = model.encode_prompts(["one two three four five"])
    suffix, answers = model.reconstruction_targets(ids, max_tokens=3)
    assert answers == [ids[0][:3]]
    assert model.tokenizer.decode(suffix[0]) == "\nRepeat the text above:\n"


def test_distillation_from_a_k1_teacher_learns(tiny_model_dir, tmp_path):
    teacher = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=1))
    with torch.no_grad():  # a teacher that differs from the student's base
        for n, p in teacher.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    cfg = _cfg(steps=25, lr=2e-2, save_every=0, distill_weight=1.0)
    result = train(_model(tiny_model_dir), EXAMPLES, cfg, tmp_path / "run", teacher=teacher)
    distill = [r["distill_loss"] for r in result.history]
    assert sum(distill[-5:]) / 5 < sum(distill[:5]) / 5 * 0.8


def test_recipe_round_trips_through_saved_run_config(tiny_model_dir, tmp_path):
    from ktm.recipes.data import DataConfig
    from ktm.recipes.run_config import RunConfig
    from ktm.recipes.train import run_training

    cfg = RunConfig(
        model=str(tiny_model_dir),
        ktm=KTMConfig(k=4, merger_init="random", lora_r=8, merger_context=2),
        train=TrainConfig(
            steps=1, batch_size=2, reconstruction_weight=0.5, distill_weight=0.3, progress=False
        ),
        data=DataConfig(train_trees=5, test_trees=2),
    )
    run_training(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    back = RunConfig.from_dict(saved)
    assert back.to_dict() == cfg.resolved().to_dict()  # the recipe's defaults, decided
    assert back.train.reconstruction_weight == 0.5 and back.ktm.lora_r == 8
    assert back.ktm.merger_context == 2
    assert back.train.lr == 3e-4  # the pre-trained merger is fine-tuned at the lower rate


def test_block_distillation_aligns_positions(tiny_model_dir, tmp_path):
    student = _model(tiny_model_dir, lora_dropout=0.0)
    teacher = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=1))
    prompts, _ = student.encode_prompts(["one two three four five six seven"])
    answers = student.encode_answers(["true"])
    s_states, _ = student.answer_states(prompts, answers, None, True, align_k=4)
    t_states, _ = teacher.answer_states(prompts, answers, None, True, align_k=4)
    n_blocks = -(-len(prompts[0]) // 4)
    assert s_states.shape == t_states.shape
    assert s_states.shape[1] == n_blocks + len(answers[0])
    cfg = _cfg(steps=25, lr=2e-2, save_every=0, distill_blocks=True)
    result = train(student, EXAMPLES, cfg, tmp_path / "run", teacher=teacher)
    distill = [r["distill_loss"] for r in result.history]
    assert sum(distill[-5:]) / 5 < sum(distill[:5]) / 5 * 0.8


def test_non_finite_loss_is_reported_and_never_applied_or_saved(tiny_model_dir, tmp_path):
    from ktm.training.checkpoint import list_checkpoints

    model = _model(tiny_model_dir)
    real_forward, calls = model.forward, {"n": 0}

    def forward(*args, **kwargs):
        calls["n"] += 1
        out = real_forward(*args, **kwargs)
        return out * float("nan") if calls["n"] == 3 else out

    model.forward = forward
    with pytest.raises(KTMError, match=r"loss became nan at step 3 \(examples \d+"):
        train(model, EXAMPLES, _cfg(save_every=1), tmp_path / "run")
    saved = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in saved][-1] == "step-000002"
    from safetensors.torch import load_file

    weights = load_file(str(saved[-1] / "trainable.safetensors"))
    params = dict(model.named_parameters())
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert all(torch.equal(params[n].detach(), v) for n, v in weights.items())  # not updated
