"""Loaders of record tasks (Amazon, CommitPack, custom) on small local files."""

import json

import pytest

from ktm.errors import KTMError
from ktm.recipes.data import DataConfig, load_stages
from ktm.tasks import get_task
from ktm.tasks.metrics import edit_distance, edit_similarity, generation_metrics
from ktm.tasks.records import PromptTemplate


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _amazon_dir(tmp_path, train_rows, test_rows=None):
    folder = tmp_path / "amazon_reviews"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", train_rows)
    _jsonl(folder / "test.jsonl", test_rows or train_rows)
    return folder


def _reviews(n):
    return [{"text": f"review number {i}", "rating": float(1 + i % 5)} for i in range(n)]


def test_amazon_label_rule_and_prompt(tmp_path, tokenizer):
    rows = [
        {"text": "great", "rating": 5},
        {"text": "fine", "rating": 3.5},
        {"text": "meh", "rating": 3.0},
        {"text": "bad", "rating": "1"},
    ]
    folder = _amazon_dir(tmp_path, rows)
    stages, info = load_stages(DataConfig(task="amazon", data_dir=str(folder)), tokenizer)
    got = {e.prompt: e.label for e in stages[0].train}
    assert got == {
        "Review: great, Label:": "positive",
        "Review: fine, Label:": "positive",  # rating >= 3.5 is positive
        "Review: meh, Label:": "negative",
        "Review: bad, Label:": "negative",
    }
    assert info["train"]["rows_read"] == 4 and info["train"]["skipped_rows"] == 0
    assert get_task("amazon").labels == ("positive", "negative")


def test_amazon_reads_data_dir_from_environment(tmp_path, tokenizer, monkeypatch):
    _amazon_dir(tmp_path, _reviews(6))
    monkeypatch.setenv("KTM_DATA_DIR", str(tmp_path))
    stages, _ = load_stages(DataConfig(task="amazon", balance=False), tokenizer)
    assert len(stages[0].train) == 6


def test_classification_training_data_is_class_balanced(tmp_path, tokenizer):
    folder = _amazon_dir(tmp_path, _reviews(50))  # 20 positive, 30 negative
    stages, _ = load_stages(DataConfig(task="amazon", data_dir=str(folder)), tokenizer)
    labels = [e.label for e in stages[0].train]
    assert labels.count("positive") == labels.count("negative") == 20
    assert len(stages[0].test) == 50  # the test split keeps its natural skew
    stages, _ = load_stages(DataConfig(task="amazon", data_dir=str(folder), max_train=6), tokenizer)
    assert sorted(e.label for e in stages[0].train) == ["negative"] * 3 + ["positive"] * 3


def test_amazon_missing_data_dir_is_a_clear_error(tokenizer, monkeypatch):
    monkeypatch.delenv("KTM_DATA_DIR", raising=False)
    with pytest.raises(KTMError, match="--data"):
        load_stages(DataConfig(task="amazon"), tokenizer)


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ('{"text": "x", "rating": 9}', "outside 1-5"),
        ('{"text": "x"}', "missing field 'rating'"),
        ('{"text": "   ", "rating": 4}', "field 'text' is empty"),
        ('{"text": ["a"], "rating": 4}', "is a list"),
        ('{"text": "x", "rating": "five"}', "not a number"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_amazon_bad_rows_name_file_and_line(tmp_path, tokenizer, bad_line, reason):
    folder = _amazon_dir(tmp_path, _reviews(3))
    path = folder / "train.jsonl"
    path.write_text(path.read_text() + bad_line + "\n")
    with pytest.raises(KTMError, match=rf"train.jsonl:4: .*{reason}"):
        load_stages(DataConfig(task="amazon", data_dir=str(folder)), tokenizer)
    # Asked to, the loader skips and counts the row instead.
    stages, info = load_stages(
        DataConfig(task="amazon", data_dir=str(folder), skip_bad_rows=True), tokenizer
    )
    assert len(stages[0].train) == 3
    assert info["train"]["skipped_rows"] == 1
    assert "train.jsonl:4" in info["train"]["first_reasons"][0]


def test_non_utf8_row(tmp_path, tokenizer):
    folder = _amazon_dir(tmp_path, _reviews(2))
    with open(folder / "train.jsonl", "ab") as f:
        f.write(b'{"text": "caf\xe9", "rating": 4}\n')
    with pytest.raises(KTMError, match="train.jsonl:3: not UTF-8"):
        load_stages(DataConfig(task="amazon", data_dir=str(folder)), tokenizer)


def test_max_train_samples_with_seed(tmp_path, tokenizer):
    folder = _amazon_dir(tmp_path, _reviews(40))
    cfg = DataConfig(task="amazon", data_dir=str(folder), max_train=10, max_test=5)
    a, _ = load_stages(cfg, tokenizer)
    b, _ = load_stages(cfg, tokenizer)
    assert len(a[0].train) == 10 and len(a[0].test) == 5
    assert [e.prompt for e in a[0].train] == [e.prompt for e in b[0].train]
    c, _ = load_stages(
        DataConfig(task="amazon", data_dir=str(folder), max_train=10, data_seed=7), tokenizer
    )
    assert [e.prompt for e in c[0].train] != [e.prompt for e in a[0].train]


def _commit(i, old_lines=3, new_lines=3):
    return {
        "old_contents": "".join(f"x{i}_{j} = {j}\n" for j in range(old_lines)),
        "subject": f"Change constant {i}",
        "new_contents": "".join(f"x{i}_{j} = {j + 1}\n" for j in range(new_lines)),
        "repo": "a/b",
    }


def test_commitpack_prompt_answer_and_limits(tmp_path, tokenizer):
    folder = tmp_path / "commitpack"
    folder.mkdir()
    rows = [_commit(0), _commit(1, old_lines=200), _commit(2, new_lines=200), _commit(3)]
    _jsonl(folder / "train.jsonl", rows)
    _jsonl(folder / "test.jsonl", rows)
    task = get_task("commitpack")
    assert task.kind == "generation"
    base = dict(task="commitpack", data_dir=str(folder), max_prompt_tokens=120)

    stages, info = load_stages(
        DataConfig(**base, max_answer_tokens=120, truncation="skip"), tokenizer
    )
    train = stages[0].train
    assert len(train) == 2  # the long old file and the long new file are dropped
    assert info["train"]["dropped_long_prompt"] == 1
    assert info["train"]["dropped_long_answer"] == 1
    ex = [e for e in train if "x0_0" in e.prompt][0]
    assert ex.prompt.startswith("Update the old python code content based on the instructions.")
    assert ex.prompt.endswith("\nInstructions: Change constant 0\nNew Content:\n")
    assert ex.label == _commit(0)["new_contents"]

    for policy in ("head", "tail"):
        stages, info = load_stages(DataConfig(**base, truncation=policy), tokenizer)
        long = [e for e in stages[0].train if "x1_" in e.prompt][0]
        n = len(tokenizer(long.prompt)["input_ids"])
        assert n <= 120, n
        assert long.prompt.endswith("Instructions: Change constant 1\nNew Content:\n")
        assert ("x1_0 = 0" in long.prompt) == (policy == "head")
        assert ("x1_199 = 199" in long.prompt) == (policy == "tail")
        assert info["train"]["truncated"] == 1


def test_custom_csv_classification(tmp_path, tokenizer):
    path = tmp_path / "tickets.csv"
    path.write_text(
        "body,team\n"
        '"I was charged twice, please refund",billing\n'
        "The app crashes on start,tech\n"
        "Do you have a student discount?,sales\n",
        encoding="utf-8",
    )
    cfg = DataConfig(
        task="custom",
        train_file=str(path),
        test_file=str(path),
        template="Ticket: {body}\nTeam:",
        answer_field="team",
        labels=["billing", "tech", "sales"],
    )
    stages, _ = load_stages(cfg, tokenizer)
    rows = {e.prompt: e.label for e in stages[0].train}
    assert rows["Ticket: I was charged twice, please refund\nTeam:"] == "billing"
    task = get_task("custom").with_data(cfg)
    assert task.kind == "classification" and task.labels == ("billing", "tech", "sales")

    good = path.read_text()
    path.write_text(good + "Where is my parcel?,logistics\n")
    with pytest.raises(KTMError, match=r"tickets.csv:5: team 'logistics' is not one of"):
        load_stages(cfg, tokenizer)
    path.write_text(good + "too,many,cells\n")
    with pytest.raises(KTMError, match=r"tickets.csv:5: 3 cells for a header of 2"):
        load_stages(cfg, tokenizer)


def test_custom_generation_with_suffix(tmp_path, tokenizer):
    path = _jsonl(
        tmp_path / "qa.jsonl",
        [{"doc": "The sky is blue.", "q": "What colour is the sky?", "a": "blue"}] * 3,
    )
    cfg = DataConfig(
        task="custom",
        train_file=str(path),
        test_file=str(path),
        template="Context: {doc}",
        suffix_template="\nQuestion: {q}\nAnswer:",
        answer_field="a",
    )
    stages, _ = load_stages(cfg, tokenizer)
    ex = stages[0].train[0]
    assert (ex.prompt, ex.suffix, ex.label) == (
        "Context: The sky is blue.",
        "\nQuestion: What colour is the sky?\nAnswer:",
        "blue",
    )
    assert get_task("custom").with_data(cfg).kind == "generation"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(template=None), "needs --template"),
        (dict(template="no fields"), "names no field"),
        (dict(template="{a!r}"), "plain names"),
        (dict(template="Text: {missing}"), "missing field 'missing'"),
        (dict(truncation="middle"), "truncation must be one of"),
        (dict(labels=["only"]), "at least two"),
        (dict(max_train=0), "max_train must be >= 1"),
    ],
)
def test_custom_config_errors(tmp_path, tokenizer, kwargs, message):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "t", "answer": "a"}])
    base = dict(task="custom", train_file=str(path), test_file=str(path), template="T: {text}")
    with pytest.raises(KTMError, match=message):
        load_stages(DataConfig(**{**base, **kwargs}), tokenizer)


def test_template_fields():
    t = PromptTemplate("A {x} B {y}", "C {x} {z}")
    assert t.fields == ["x", "y", "z"]
    assert t.render({"x": "1", "y": 2, "z": "3"}) == ("A 1 B 2", "C 1 3")


def test_templates_typed_in_a_shell_read_backslash_n_as_a_newline(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"doc": "a=1", "q": "a?", "answer": "1"}])
    cfg = DataConfig(task="custom", train_file=str(path), test_file=str(path),
                     template="{doc}\\nQ: {q}", suffix_template="\\tA:", split_field="doc",
                     split_marker="=")  # fmt: skip
    assert cfg.template == "{doc}\nQ: {q}" and cfg.suffix_template == "\tA:"
    again = DataConfig(**{**cfg.__dict__})  # as a resumed run reads its saved config
    assert again.template == cfg.template and again.suffix_template == cfg.suffix_template


def test_edit_similarity_and_generation_metrics():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("abcd", "abxd") == pytest.approx(0.75)
    m = generation_metrics(["a b ", "xyz"], ["a b", "xyw"])
    assert m["exact_match"] == 0.5
    assert m["edit_similarity"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_context_limit_counts_merged_positions(tmp_path, tokenizer):
    """⌈prompt/K⌉ + suffix + answer + EOS against the limit; file and line in the error; the
    reduction baselines count their budget; a tree example is named by split and index."""
    from ktm.tasks.context_fit import ContextLimit, positions_needed

    rows = _reviews(4)
    rows.insert(1, {"text": "word " * 300, "rating": 5})  # line 2
    folder = _amazon_dir(tmp_path, rows)
    cfg = DataConfig(task="amazon", data_dir=str(folder), balance=False)
    stages, _ = load_stages(cfg, tokenizer)
    long = next(e for e in stages[0].train if e.prompt.startswith("Review: word"))
    ((need, p, s, a),) = positions_needed(tokenizer, [long], 4)
    assert s == 0 and a == len(tokenizer("positive", add_special_tokens=False)["input_ids"])
    assert need == -(-p // 4) + a + 1 and p > 300
    with pytest.raises(KTMError, match=r"train.jsonl:2: the example needs \d+ positions"):
        load_stages(cfg, tokenizer, ContextLimit(need - 1, 4))
    stages, info = load_stages(cfg, tokenizer, ContextLimit(need, 4))  # fits exactly
    assert (
        len(stages[0].train) == 5
        and info["context"]["over"]["amazon_reviews"]["train"]["skipped_rows"] == 0
    )
    skip = DataConfig(task="amazon", data_dir=str(folder), balance=False, skip_bad_rows=True)
    stages, info = load_stages(skip, tokenizer, ContextLimit(need - 1, 4))
    assert len(stages[0].train) == len(stages[0].test) == 4
    assert info["context"]["over"]["amazon_reviews"]["test"]["skipped_rows"] == 1
    with pytest.raises(KTMError, match="no train example fits"):
        load_stages(skip, tokenizer, ContextLimit(3, 4))
    tree = DataConfig(task="tree", train_trees=4, test_trees=2)
    with pytest.raises(KTMError, match="train example 0: the example needs"):
        load_stages(tree, tokenizer, ContextLimit(8, 1))


def test_reduction_baseline_counts_its_budget(make_model):
    from ktm.recipes.data import context_limit
    from ktm.tasks.context_fit import ContextLimit

    assert context_limit(make_model(k=4)) == ContextLimit(512, 4)
    k1 = make_model(k=1)
    assert context_limit(k1, budget_k=4).k == 4 and context_limit(k1, 4).positions == 512


@pytest.mark.parametrize(
    "task, category, path, record",
    [
        ("amazon", None, "raw/review_categories/Amazon_Fashion.jsonl", _reviews),
        ("amazon", "All_Beauty", "raw/review_categories/All_Beauty.jsonl", _reviews),
        ("commitpack", None, "data/python/data.jsonl", lambda n: [_commit(i) for i in range(n)]),
    ],
)
def test_hub_loaders_read_the_raw_jsonl_and_split_it(
    tokenizer, monkeypatch, task, category, path, record
):
    """--hub reads the repository's JSONL (datasets >= 4 no longer runs the loading scripts)
    and splits it with a seeded shuffle: the test split is the paper's size (at most half),
    no record is in both, and rows are named by split and index."""
    from ktm.tasks import amazon, commitpack

    rows = record(40)
    for i, r in enumerate(rows):
        r["id"] = i
    asked = []

    def fake_hub_jsonl(repo, file):
        asked.append((repo, file))
        return rows

    module = amazon if task == "amazon" else commitpack
    monkeypatch.setattr(module, "hub_jsonl", fake_hub_jsonl)
    monkeypatch.setattr(module, "HUB_TEST_SIZE", 8)
    t = get_task(task)
    data = DataConfig(task=task, hub=True, category=category, balance=False)
    train = t.hub_records(data, "train")
    test = t.hub_records(data, "test")
    assert asked[0] == (module.HUB_DATASET, path)
    assert len(test) == 8
    assert len(train) == (3 if task == "amazon" else 32)  # Amazon: 10% of the rest
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    assert [r["id"] for r in t.hub_records(data, "test")] == [r["id"] for r in test]  # seeded

    monkeypatch.setattr(module, "HUB_TEST_SIZE", 1000)  # a small category: half is the test
    assert len(t.hub_records(data, "test")) == 20

    stages, info = load_stages(data, tokenizer)
    assert info["test"]["rows_read"] == 20
    assert stages[0].test[0].source.startswith("hub test row ")
    if task == "amazon":
        want = {f"Review: {r['text']}, Label:": r["rating"] >= 3.5 for r in rows}
        assert all(want[e.prompt] == (e.label == "positive") for e in stages[0].test)


def test_hub_without_datasets_or_enough_rows_is_a_clear_error(monkeypatch):
    import sys

    from ktm.tasks.hub import hub_jsonl, seeded_split

    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(KTMError, match="pip install datasets"):
        hub_jsonl("a/b", "c.jsonl")
    with pytest.raises(KTMError, match="at least 2"):
        seeded_split([{"x": 1}], "train", 10, 0)
