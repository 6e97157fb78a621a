"""A custom task keeps the tail of a prompt field raw: split at the last marker."""

import json

import pytest

from ktm import KTMConfig, KTMModel
from ktm.errors import KTMError
from ktm.packing import positions_read
from ktm.recipes.data import DataConfig, load_stages

ROWS = [
    {"doc": "alpha=7; beta=9. Question: first? Question: what is beta?", "answer": "9"},
    {"doc": "gamma=3; delta=4. Question: what is gamma?", "answer": "3"},
]


def _data(tmp_path, rows=ROWS, **kw) -> DataConfig:
    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return DataConfig(task="custom", train_file=str(f), test_file=str(f),
                      template="Doc: {doc}\nAnswer:", **kw)  # fmt: skip


def test_the_tail_after_the_last_marker_is_the_raw_suffix(tmp_path, tiny_model_dir, tokenizer):
    data = _data(tmp_path, split_field="doc", split_marker="Question:")
    stages, _ = load_stages(data, tokenizer)
    ex = next(e for e in stages[0].test if "alpha" in e.prompt)
    assert ex.prompt == "Doc: alpha=7; beta=9. Question: first? "
    assert ex.suffix == "Question: what is beta?\nAnswer:"
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4))
    batch = model.compress([ex.prompt], [ex.suffix])
    p = len(model.tokenize([ex.prompt], special=True)[0])
    s = len(model.tokenize([ex.suffix])[0])
    assert batch.tokens_out == [positions_read(p, s, 4)]
    assert int(batch.attention_mask.sum()) == -(-p // 4) + s


def test_a_row_without_the_marker_is_a_bad_row(tmp_path, tokenizer):
    rows = [*ROWS, {"doc": "no marker here", "answer": "x"}]
    with pytest.raises(KTMError, match=r"d.jsonl:3: field 'doc' has no 'Question:'"):
        load_stages(_data(tmp_path, rows, split_field="doc", split_marker="Question:"), tokenizer)
    stages, info = load_stages(
        _data(tmp_path, rows, split_field="doc", split_marker="Question:", skip_bad_rows=True),
        tokenizer,
    )
    assert len(stages[0].train) == 2


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"split_field": "doc"}, "--split-field and a non-empty --split-marker together"),
        ({"split_field": "nope", "split_marker": "Q"}, "must appear once in the prompt"),
    ],
)
def test_bad_split_options(tmp_path, tokenizer, kw, message):
    with pytest.raises(KTMError, match=message):
        load_stages(_data(tmp_path, **kw), tokenizer)
