"""The raw-to-merged curriculum (``--raw-anneal-steps``): the task's first steps keep a falling
share of each prompt raw, from every token (as K = 1 reads it) to the model's own layout."""

import pytest
import torch

from ktm import KTMConfig, KTMModel
from ktm.errors import KTMError
from ktm.training import Example, TrainConfig, train

EXAMPLES = [
    Example(f"Item {i}: " + "word " * (i % 7 + 3), "true" if i % 2 else "false") for i in range(24)
]


def test_the_raw_share_falls_from_every_token_to_the_models_layout():
    cfg = TrainConfig(steps=10, raw_anneal_steps=4)
    assert [cfg.raw_share(s, 0.25) for s in range(6)] == [1.0, 0.8125, 0.625, 0.4375, None, None]
    assert TrainConfig(steps=10).raw_share(0, 0.25) is None  # off unless a recipe decides
    assert cfg.raw_share(0, 1.0) is None  # K = 1: nothing to anneal
    with pytest.raises(KTMError, match="raw_anneal_steps"):
        TrainConfig(raw_anneal_steps=-1)


@pytest.mark.parametrize("k, budget", [(4, None), (4, 0.5), (1, None)])
def test_training_reads_the_curriculums_layout_at_each_step(
    tiny_model_dir, tmp_path, monkeypatch, k, budget
):
    torch.manual_seed(0)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=k, budget=budget))
    model.fit_token_idf([e.model_prompt for e in EXAMPLES])  # the ranking, as ktm train fits it
    read: list[tuple[float | None, int, int]] = []  # (budget, positions, prompt tokens) of row 0
    compress = model.compress_ids

    def spy(prompt_ids, suffix_ids=None, answer_ids=None, budget=None, *a, **kw):
        batch = compress(prompt_ids, suffix_ids, answer_ids, budget, *a, **kw)
        if model.training:
            suffix = len(suffix_ids[0]) if suffix_ids else 0
            read.append((budget, int(batch.tokens_out[0]) - suffix, len(prompt_ids[0])))
        return batch

    monkeypatch.setattr(model, "compress_ids", spy)
    cfg = TrainConfig(steps=4, batch_size=1, lr=1e-3, save_every=0, raw_anneal_steps=2,
                      progress=False)  # fmt: skip
    result = train(model, EXAMPLES, cfg, tmp_path / "run")
    assert len(result.history) == 4 and all(r["loss"] > 0 for r in result.history)
    if k == 1:  # every token is raw already: nothing to anneal
        assert [b for b, _, _ in read] == [None] * 4
        return
    final = budget or 1 / k
    assert [b for b, _, _ in read] == [1.0, 1 - (1 - final) / 2, None, None]
    # step 0 reads every prompt token as itself; the last steps the model's own layout
    assert read[0][1] == read[0][2]
    assert all(positions <= max(-(-n // k), int(final * n)) for _, positions, n in read[2:])
