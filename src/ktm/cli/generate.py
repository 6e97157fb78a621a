"""Command-line options generated from config dataclasses, and configs built back from them.

Every field with help metadata (:func:`ktm.fields.option`) becomes one option; nested
dataclasses are flattened (``RunConfig.ktm.k`` is ``--k``). Options default to "not given",
so the dataclasses stay the one source of defaults, a run can tell which options the user
gave, and values from ``--config FILE`` are checked against the same field types.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from ..errors import KTMError
from ..fields import default_of

NOT_GIVEN = argparse.SUPPRESS


def _unwrap(typ: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return (args[0] if len(args) == 1 else typ), len(args) < len(typing.get_args(typ))
    return typ, False


def _is_dataclass_type(typ: Any) -> bool:
    return isinstance(typ, type) and dataclasses.is_dataclass(typ)


def cli_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, type) of every option of ``cls``, nested dataclasses flattened in order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        inner, _ = _unwrap(hints[f.name])
        if _is_dataclass_type(inner):
            out += cli_fields(inner)
        elif f.metadata.get("cli", False):
            out.append((f, hints[f.name]))
    return out


def flag(f: dataclasses.Field) -> str:
    return "--" + f.metadata.get("flag", f.name).replace("_", "-")


def _number(kind: type, optional: bool = False) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if optional and text.strip().lower() == "none":  # an optional number's "not set"
            return None
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_type_name(kind)}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value

    return parse


def _comma_list(kind: type) -> Callable[[str], list]:
    item = _number(kind) if kind in (int, float) else kind

    def parse(text: str) -> list:
        if text.strip().lower() == "none":
            return []
        return [item(v.strip()) for v in text.split(",") if v.strip()]

    return parse


def _type_name(typ: Any) -> str:
    base, optional = _unwrap(typ)
    origin = typing.get_origin(base)
    if origin is list:
        item = _type_name(typing.get_args(base)[0]).removeprefix("an ").removeprefix("a ")
        name = f"a list of {item}s"
    else:
        name = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
            base, getattr(base, "__name__", str(base))
        )
    return name + (" or null" if optional else "")


def _help(f: dataclasses.Field) -> str:
    text = f.metadata["help"]
    default = default_of(f)
    if f.metadata.get("positional") or default is dataclasses.MISSING:
        return text
    if isinstance(default, bool) or default is None or default == []:
        return text
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    return f"{text} (default: {shown})"


def add_options(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """One option per field of ``cls`` (see the module doc), in a group per dataclass;
    required fields are checked when the config is built, so ``--config FILE`` may give them."""
    group = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        inner, _ = _unwrap(hints[f.name])
        if _is_dataclass_type(inner):
            add_options(parser, inner, title=f.metadata.get("title", f.name))
        elif f.metadata.get("cli", False):
            _add_option(group, f, hints[f.name])


def _add_option(group, f: dataclasses.Field, typ: Any) -> None:
    base, optional = _unwrap(typ)
    kw: dict[str, Any] = {"default": NOT_GIVEN, "help": _help(f), "dest": f.name}
    if "choices" in f.metadata:
        kw["choices"] = f.metadata["choices"]
    if f.metadata.get("positional"):
        del kw["dest"]
        group.add_argument(f.name, nargs="?", **kw)
        return
    name = flag(f)
    if base is bool:
        if default_of(f) is True:
            name = "--no-" + name[2:]
            kw.update(action="store_false", help=f"turn off: {kw['help']} (on by default)")
        else:
            kw["action"] = "store_true"
    elif typing.get_origin(base) is list:
        item = typing.get_args(base)[0]
        if f.metadata.get("repeat"):
            kw.update(action="append", type=item)
        else:
            kw.update(type=_comma_list(item), metavar="A,B,...")
    elif base in (int, float):
        kw["type"] = _number(base, optional)
    if kw.get("action") not in ("store_true", "store_false") and "choices" not in kw:
        kw.setdefault("metavar", name[2:].upper().replace("-", "_"))
    group.add_argument(name, **kw)


def check_value(f: dataclasses.Field, typ: Any, value: Any, where: str) -> Any:
    """``value`` (from a JSON file) if it has the field's type, else a :class:`KTMError`."""
    base, optional = _unwrap(typ)
    ok = (value is None and optional) or _has_type(value, base)
    if not ok:
        raise KTMError(
            f"{where}: {f.name.replace('_', '-')} must be {_type_name(typ)}, got {value!r}"
        )
    if "choices" in f.metadata and value is not None and value not in f.metadata["choices"]:
        choices = ", ".join(map(str, f.metadata["choices"]))
        raise KTMError(f"{where}: {f.name.replace('_', '-')} must be one of {choices}")
    return float(value) if base is float and value is not None else value


def _has_type(value: Any, base: Any) -> bool:
    if typing.get_origin(base) is list:
        item = typing.get_args(base)[0]
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and math.isfinite(value)
    return isinstance(value, base)


def file_values(values: Any, classes: list[type], where: str) -> dict[str, Any]:
    """The options of a ``--config`` JSON object, typed as the dataclasses say."""
    if not isinstance(values, dict):
        raise KTMError(f"{where} must hold a JSON object of option values")
    known = {f.name: (f, typ) for cls in classes for f, typ in cli_fields(cls)}
    by_flag = {flag(f)[2:].replace("-", "_"): name for name, (f, _) in known.items()}
    out = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        name = name if name in known else by_flag.get(name, name)
        negated = name.startswith("no_") and name[3:] in known and default_of(known[name[3:]][0])
        if negated is True:  # the command line's --no-progress, as "no_progress": true
            name = name[3:]
        if name not in known:
            raise KTMError(f"{where}: unknown option {key!r}")
        f, typ = known[name]
        out[name] = check_value(f, typ, value, where)
        if negated is True:
            out[name] = not value
    return out


def build(cls: type, values: dict[str, Any]) -> Any:
    """An instance of ``cls`` from option values (field name → value); unset fields keep
    their defaults. A nested optional dataclass is built when one of its options is given."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        inner, optional = _unwrap(hints[f.name])
        if _is_dataclass_type(inner):
            given = [g.name for g, _ in cli_fields(inner) if g.name in values]
            key = f.metadata.get("given_by")  # the option that asks for an optional part
            if optional and key and given and key not in given:
                names = ", ".join("--" + n.replace("_", "-") for n in given)
                raise KTMError(f"{names} read a task's data: give --{key} too")
            if not optional or (key in given if key else given):
                kwargs[f.name] = build(inner, values)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            what = f.name if f.metadata.get("positional") else flag(f)
            raise KTMError(f"the following arguments are required: {what}")
    return cls(**kwargs)
