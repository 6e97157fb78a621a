"""Read data records (JSONL or CSV) with file-and-line errors, and render prompt templates.

Every task that starts from a data file — Amazon Reviews, CommitPackFT, a user's own — reads
its rows here. A bad row is an error naming the file and line, unless the caller asks to
skip bad rows, in which case they are counted (:class:`BadRows`) and reported with the run.
"""

from __future__ import annotations

import csv
import io
import json
import re
import string
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KTMError

FORMATS = ("jsonl", "csv")
_CUT = "\x00ktm-split\x00"  # where a split field is cut while its template is rendered


class BadRow(ValueError):
    """A row that a task cannot use; the message says why (the reader adds file and line)."""


@dataclass
class BadRows:
    """Rows skipped while reading, with the first few reasons."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, where: str, why: str) -> None:
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {why}")

    def to_dict(self) -> dict:
        return {"skipped_rows": self.count, "first_reasons": list(self.examples)}


def file_format(path: Path, fmt: str | None = None) -> str:
    """``fmt`` if given, else from the file's suffix (``.jsonl``/``.json`` or ``.csv``)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise KTMError(f"data format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise KTMError(f"cannot tell the format of {path} from its name; pass --data-format jsonl|csv")


def _no_field_limit() -> None:
    """Let the csv module read fields of any length (its default stops at 131,072 chars)."""
    limit = sys.maxsize
    while True:  # the largest value this platform's C long holds
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def iter_records(path: str | Path, fmt: str | None = None) -> Iterator[tuple[int, dict | str]]:
    """(line number, record) pairs; a record that does not parse comes as an error string."""
    path = Path(path)
    if not path.is_file():
        raise KTMError(f"data file not found: {path}")
    fmt = file_format(path, fmt)
    raw = path.read_bytes()
    if fmt == "jsonl":
        for lineno, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as e:
                yield lineno, f"not UTF-8 ({e.reason} at byte {e.start})"
                continue
            except json.JSONDecodeError as e:
                yield lineno, f"not valid JSON ({e.msg})"
                continue
            yield lineno, row if isinstance(row, dict) else "expected a JSON object"
        return
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise KTMError(f"{path}:{line}: not UTF-8 ({e.reason}); save the file as UTF-8") from None
    _no_field_limit()  # a long field is cut or dropped by the run's limits, not by the reader
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise KTMError(f"{path}: the CSV file has no header row")
    try:
        for row in reader:
            if row.get(None):  # more cells than header fields
                yield (
                    reader.line_num,
                    f"{len(row) - 1 + len(row[None])} cells for "
                    f"a header of {len(reader.fieldnames)}",
                )
                continue
            yield reader.line_num, row
    except csv.Error as e:
        raise KTMError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def read_rows(
    path: str | Path,
    convert: Callable[[dict], object],
    fmt: str | None = None,
    skip_bad: bool = False,
    bad: BadRows | None = None,
    limit: int | None = None,
) -> list:
    """``convert`` every record of ``path``; a :class:`BadRow` it raises names file and line,
    and a result with a ``source`` attribute gets its ``"file:line"``.

    With ``skip_bad`` such rows are counted in ``bad`` instead of stopping the read.
    ``limit`` stops after that many good rows.
    """
    bad = bad if bad is not None else BadRows()
    out = []
    for lineno, record in iter_records(path, fmt):
        where = f"{path}:{lineno}"
        try:
            if isinstance(record, str):
                raise BadRow(record)
            row = convert(record)
            if hasattr(row, "source"):  # examples and rows carry their file:line
                row.source = where
            out.append(row)
        except BadRow as e:
            if not skip_bad:
                raise KTMError(f"{where}: {e} (pass --skip-bad-rows to skip such rows)") from None
            bad.add(where, str(e))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise KTMError(
            f"{path} holds no usable rows" + (f" ({bad.count} bad)" if bad.count else "")
        )
    return out


def text_field(record: dict, name: str, allow_empty: bool = False) -> str:
    """``record[name]`` as text; a missing, non-text or blank value is a :class:`BadRow`."""
    if name not in record:
        raise BadRow(f"missing field {name!r}")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRow(f"field {name!r} is a {type(value).__name__}, expected text")
    value = str(value)
    if not allow_empty and not value.strip():
        raise BadRow(f"field {name!r} is empty")
    return value


def number_field(record: dict, name: str) -> float:
    if name not in record:
        raise BadRow(f"missing field {name!r}")
    value = record[name]
    if isinstance(value, bool):
        raise BadRow(f"field {name!r} is a boolean, expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRow(f"field {name!r} = {value!r} is not a number") from None


_ESCAPES = {"n": "\n", "t": "\t"}


def decode_escapes(text: str | None) -> str | None:
    """``\\n`` and ``\\t`` typed on a command line as the newline and tab they stand for (a
    shell passes them as two characters). Decoding twice changes nothing, so a run's saved
    config reads back the same."""
    if text is None:
        return None
    return re.sub(r"\\([nt])", lambda m: _ESCAPES[m.group(1)], text)


@dataclass(frozen=True)
class PromptTemplate:
    """``str.format`` templates for the compressed part and the (optional) uncompressed suffix.

    Example: ``PromptTemplate("Review: {text}, Label:")``. With ``split_field`` and
    ``split_marker``, that field is cut at the last occurrence of the marker: the text before
    it is merged, the marker and everything after it in the prompt stay raw (they lead the
    suffix), so a question at the end of a document is read as tokens.
    """

    prompt: str
    suffix: str | None = None
    split_field: str | None = None
    split_marker: str | None = None

    def __post_init__(self) -> None:
        for name, text in (("prompt", self.prompt), ("suffix", self.suffix)):
            if text is None:
                continue
            try:
                parsed = list(string.Formatter().parse(text))
            except ValueError as e:
                raise KTMError(f"bad {name} template {text!r}: {e}") from None
            for _, fname, spec, conv in parsed:
                if fname is not None and (not fname.isidentifier() or spec or conv):
                    raise KTMError(
                        f"bad {name} template {text!r}: fields must be plain names like {{text}}"
                    )
        if not self.fields:
            raise KTMError(f"prompt template {self.prompt!r} names no field, e.g. {{text}}")
        if (self.split_field is None) != (self.split_marker is None) or self.split_marker == "":
            raise KTMError("give --split-field and a non-empty --split-marker together")
        prompt_fields = [f for _, f, _, _ in string.Formatter().parse(self.prompt) if f]
        if self.split_field is not None and prompt_fields.count(self.split_field) != 1:
            raise KTMError(
                f"split field {self.split_field!r} must appear once in the prompt template "
                f"{self.prompt!r}"
            )

    @property
    def fields(self) -> list[str]:
        names = []
        for text in (self.prompt, self.suffix or ""):
            names += [f for _, f, _, _ in string.Formatter().parse(text) if f]
        return list(dict.fromkeys(names))

    def render(self, record: dict) -> tuple[str, str | None]:
        """(prompt, suffix) for ``record``; a missing or blank field is a :class:`BadRow`."""
        values = {f: text_field(record, f) for f in self.fields}
        suffix = self.suffix.format(**values) if self.suffix is not None else None
        if self.split_field is None:
            return self.prompt.format(**values), suffix
        text = values[self.split_field]
        cut = text.rfind(self.split_marker)
        if cut < 0:
            raise BadRow(f"field {self.split_field!r} has no {self.split_marker!r} to split at")
        marked = {**values, self.split_field: text[:cut] + _CUT + text[cut:]}
        merged, raw = self.prompt.format(**marked).split(_CUT)
        if not merged.strip():
            raise BadRow(f"field {self.split_field!r} has nothing before {self.split_marker!r}")
        return merged, raw + (suffix or "")
