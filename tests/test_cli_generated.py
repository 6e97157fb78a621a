"""The command line is generated from the config dataclasses: every field is an option, the
defaults are the dataclasses' own, and ``--config`` files are typed like them."""

import dataclasses
import json
import re

import pytest

from ktm.cli import main
from ktm.cli.generate import build, cli_fields, flag
from ktm.cli.parser import build_parser, commands
from ktm.errors import KTMError

COMMANDS = commands()


def _help(words: tuple[str, ...], capsys) -> str:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*words, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c.words))
def test_help_lists_every_field(command, capsys):
    """`ktm CMD --help` names every field of the command's configs, with the dataclass
    default beside it."""
    text = " ".join(_help(command.words, capsys).split())  # argparse wraps lines
    for cls in command.configs:
        for f, _ in cli_fields(cls):
            if f.metadata.get("positional"):
                assert f.name in text
                continue
            name = flag(f)
            if f.default is True:
                name = "--no-" + name[2:]
            assert name in text, f"{name} missing from `ktm {' '.join(command.words)} --help`"
            default = f.default
            if isinstance(default, (int, float, str)) and not isinstance(default, bool):
                assert f"(default: {default})" in text, f"{name}: default {default!r} not shown"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c.words))
def test_nothing_given_builds_the_dataclass_defaults(command):
    """With no option given, a config is the dataclass's default instance (one source of
    defaults: the parser holds none)."""
    for cls in command.configs:
        required = [f for f, _ in cli_fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]  # fmt: skip
        if required:
            continue
        try:
            expected = cls()
        except KTMError as e:  # a config that needs some option (pretrain: text or a task)
            with pytest.raises(KTMError, match=re.escape(str(e))):
                build(cls, {})
            continue
        assert build(cls, {}) == expected


def test_parser_holds_no_defaults():
    args = vars(build_parser().parse_args(["train"]))
    assert set(args) <= {"command", "_word0"}, args


def test_options_reach_nested_configs():
    from ktm.recipes.run_config import RunConfig

    args = vars(build_parser().parse_args(
        ["train", "--k", "2", "--steps", "7", "--labels", "a,b", "--task", "custom",
         "--no-lora-lm-head", "--pretrain-text", "x.txt", "--pretrain-text", "y.txt"]
    ))  # fmt: skip
    args.pop("command"), args.pop("_word0")
    cfg = build(RunConfig, args)
    assert cfg.ktm.k == 2 and cfg.train.steps == 7 and cfg.data.labels == ["a", "b"]
    assert cfg.ktm.lora_lm_head is False and cfg.pretrain_text == ["x.txt", "y.txt"]
    assert cfg.ktm.merger_hidden_factor == 0.5  # the default, from the dataclass


def test_an_optional_number_takes_none():
    from ktm.recipes.run_config import RunConfig

    def ktm(*argv: str):
        args = vars(build_parser().parse_args(["train", *argv]))
        args.pop("command"), args.pop("_word0")
        return build(RunConfig, args).ktm

    assert ktm("--merger-hidden-factor", "none").merger_hidden_factor is None  # the paper's
    assert ktm("--merger-hidden-factor", "none", "--k", "4").hidden_factor == 1.5
    assert ktm("--merger-hidden-factor", "1").merger_hidden_factor == 1.0
    with pytest.raises(SystemExit):
        ktm("--k", "none")  # not optional: "none" is refused


@pytest.mark.parametrize(
    "values, message",
    [
        ({"out": {"a": 1}}, "out must be a string"),
        ({"labels": "a,b", "task": "custom"}, "labels must be a list of strings or null"),
        ({"train_file": ["a", "b"]}, "train-file must be a string or null"),
        ({"resume": "no"}, "resume must be true or false"),
        ({"k": "4"}, "k must be an integer"),
        ({"k": True}, "k must be an integer"),
        ({"lr": float("nan")}, "lr must be a number"),
        ({"merger": "conv"}, "merger must be one of mlp, mean"),
        ({"nonsense": 1}, "unknown option 'nonsense'"),
    ],
)
def test_config_file_values_are_typed(tmp_path, capsys, values, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"out": str(tmp_path / "r"), **values}))
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "option, message", [("--k=four", "'four' is not an integer"), ("--lr=inf", "not a finite")]
)
def test_bad_numbers_on_the_command_line(capsys, option, message):
    with pytest.raises(SystemExit) as done:
        main(["train", "--out", "x", option])
    assert done.value.code == 2 and message in capsys.readouterr().err


def test_a_required_option_may_come_from_the_file_only(tmp_path, capsys):
    assert main(["export"]) == 2
    assert "required: checkpoint" in capsys.readouterr().err
    assert main(["data", "tree"]) == 2
    assert "required: --out" in capsys.readouterr().err


def test_an_option_of_another_task_is_refused(capsys):
    assert main(["train", "--task", "amazon", "--stages", "medium", "--out", "x"]) == 2
    assert "stages is for the tree task(s), not 'amazon'" in capsys.readouterr().err


def test_saved_config_holds_its_own_tasks_fields_only():
    from ktm.recipes.data import DataConfig
    from ktm.recipes.run_config import RunConfig

    custom = RunConfig(data=DataConfig(task="custom", template="{t}", labels=["a", "b"]))
    saved = custom.to_dict()["data"]
    assert "stages" not in saved and "train_trees" not in saved and "hub" not in saved
    assert saved["labels"] == ["a", "b"]
    tree = RunConfig().to_dict()["data"]
    assert tree["stages"] == ["small"] and "labels" not in tree and "template" in tree
    assert RunConfig.from_dict(custom.to_dict()) == custom
