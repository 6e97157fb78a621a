"""Tasks built from data records: a prompt template, an answer rule, and length limits.

Amazon Reviews, CommitPackFT and a user's own JSONL/CSV file are all this: each record is
rendered through a :class:`~ktm.tasks.records.PromptTemplate` into (prompt, suffix), its
answer comes from a rule (a field, or a label derived from fields), and prompts longer than
``max_prompt_tokens`` are cut (one named field loses its head or tail, the template stays
whole) or dropped, as the data config says. What was skipped, cut or dropped is counted in
the splits' ``info`` and reported with every result.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import KTMError
from .base import LabeledExample, Splits, Task
from .context_fit import token_counts
from .records import BadRow, BadRows, PromptTemplate, read_rows

TRUNCATION = ("head", "tail", "skip")  # keep the field's start / keep its end / drop the row
DATA_DIR_ENV = "KTM_DATA_DIR"


@dataclass
class _Row:
    record: dict
    answer: str
    source: str | None = None  # "file:line", or the hub row


def default_data_dir(folder: str) -> Path | None:
    """``$KTM_DATA_DIR/<folder>`` if the variable is set."""
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root) / folder if root else None


MAX_FIELD_CHARS = 1_000_000  # beyond any context: refused (or pre-cut) before tokenizing
MAX_TOKEN_CHARS = 256  # longer than any vocabulary token (SmolLM2's longest: 81 characters)


@dataclass
class RecordTask(Task):
    """A task read from records. Subclasses set the template and the answer rule."""

    template: PromptTemplate | None = None
    long_field: str | None = None  # the field cut to fit max_prompt_tokens
    data_folder: str | None = None  # default folder name under $KTM_DATA_DIR

    def with_data(self, data) -> "RecordTask":
        """This task as ``data`` configures it: ``--template`` replaces the default prompt."""
        import dataclasses

        if data.template:
            template = PromptTemplate(data.template, data.suffix_template)
        elif data.split_field or data.suffix_template:
            template = self.template
        else:
            return self
        template = dataclasses.replace(
            template,
            suffix=data.suffix_template or template.suffix,
            split_field=data.split_field,
            split_marker=data.split_marker,
        )
        return dataclasses.replace(self, template=template)

    def answer(self, record: dict) -> str:
        """The reference answer of ``record``; raise :class:`~ktm.tasks.records.BadRow`."""
        raise NotImplementedError

    def hub_records(self, data, split: str) -> list[dict]:
        """Records of ``split`` from the Hugging Face hub (tasks that have a hub source)."""
        raise KTMError(f"task {self.name!r} has no hub source; pass --data FOLDER")

    # ------------------------------------------------------------------ loading
    def split_file(self, data, split: str) -> Path:
        explicit = data.train_file if split == "train" else data.test_file
        if explicit:
            return Path(explicit)
        folder = Path(data.data_dir) if data.data_dir else default_data_dir(self.data_folder or "")
        if folder is None or not self.data_folder and not data.data_dir:
            raise KTMError(
                f"task {self.name!r}: give --data FOLDER (with train/test .jsonl or .csv), "
                f"--train-file/--test-file, or set {DATA_DIR_ENV}"
            )
        if not folder.is_dir():
            raise KTMError(
                f"data folder not found: {folder} (give --data FOLDER or set {DATA_DIR_ENV})"
            )
        for suffix in (".jsonl", ".csv"):
            if (folder / f"{split}{suffix}").is_file():
                return folder / f"{split}{suffix}"
        raise KTMError(f"{folder} has no {split}.jsonl or {split}.csv")

    def read_split_rows(self, data, split: str, bad: BadRows) -> list[_Row]:
        def convert(record: dict) -> _Row:
            record = self._bounded(record, data)
            self.template.render(record)  # every field the template names must be there
            return _Row(record, self.answer(record))

        if data.hub:
            rows = []
            for i, record in enumerate(self.hub_records(data, split)):
                try:
                    rows.append(convert(record))
                    rows[-1].source = f"hub {split} row {i}"
                except ValueError as e:
                    if not data.skip_bad_rows:
                        raise KTMError(f"hub {split} row {i}: {e}") from None
                    bad.add(f"hub {split} row {i}", str(e))
            return rows
        path = self.split_file(data, split)
        return read_rows(path, convert, data.data_format, data.skip_bad_rows, bad)

    def load(self, data, tokenizer) -> Splits:
        if self.template is None:
            raise KTMError(f"task {self.name!r} has no prompt template")
        if data.truncation not in TRUNCATION:
            raise KTMError(f"truncation must be one of {', '.join(TRUNCATION)}")
        out, info = {}, {"truncation": data.truncation}
        for split, limit, seed in (
            ("train", data.max_train, data.data_seed),
            ("test", data.max_test, data.data_seed + 1),
        ):
            bad = BadRows()
            rows = self.read_split_rows(data, split, bad)
            random.Random(seed).shuffle(rows)  # files are often sorted by source or date
            if split == "train" and data.balance and self.kind == "classification":
                rows = _class_balanced(rows)
            fitted, counts = self._fit(rows, data, tokenizer, limit)
            if not fitted:
                raise KTMError(
                    f"no {split} example fits max_prompt_tokens={data.max_prompt_tokens} / "
                    f"max_answer_tokens={data.max_answer_tokens}; raise the limits"
                )
            out[split] = fitted
            info[split] = {"rows_read": len(rows), **bad.to_dict(), **counts}
        return Splits(out["train"], out["test"], info)

    def _fit(self, rows: list[_Row], data, tokenizer, limit: int | None):
        """Render rows in order until ``limit`` examples fit the token limits."""
        kept: list[LabeledExample] = []
        counts = {"examples": 0, "truncated": 0, "dropped_long_prompt": 0, "dropped_long_answer": 0}
        batch = 256
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            rendered = [self.template.render(r.record) for r in chunk]
            prompt_lens = prompt_lengths(tokenizer, rendered)
            answer_lens = (
                token_counts(tokenizer, [r.answer for r in chunk])
                if data.max_answer_tokens
                else [0] * len(chunk)
            )
            for row, (prompt, suffix), n, a in zip(chunk, rendered, prompt_lens, answer_lens):
                if data.max_answer_tokens and a > data.max_answer_tokens:
                    counts["dropped_long_answer"] += 1
                    continue
                if data.max_prompt_tokens and n > data.max_prompt_tokens:
                    if data.truncation == "skip":
                        counts["dropped_long_prompt"] += 1
                        continue
                    prompt, suffix = self._truncate(row.record, n, data, tokenizer)
                    counts["truncated"] += 1
                start = row.record.get(self.long_field) if self.kind == "generation" else None
                kept.append(LabeledExample(prompt, row.answer, suffix, row.source, start))
                if limit is not None and len(kept) >= limit:
                    counts["examples"] = len(kept)
                    return kept, counts
        counts["examples"] = len(kept)
        return kept, counts

    def _bounded(self, record: dict, data) -> dict:
        """``record`` with no template field past what any context holds, checked by length
        before anything is tokenized: the field the run cuts is pre-cut (a token is never
        longer than :data:`MAX_TOKEN_CHARS` characters, so the exact cut is unchanged); any
        other such field makes the row bad at once."""
        cut_field = data.truncate_field or self.long_field or self.template.fields[0]
        for name in self.template.fields:
            value = record.get(name)
            if not isinstance(value, str) or len(value) <= MAX_FIELD_CHARS:
                continue
            if data.max_prompt_tokens and data.truncation != "skip" and name == cut_field:
                keep = data.max_prompt_tokens * MAX_TOKEN_CHARS
                value = value[:keep] if data.truncation == "head" else value[-keep:]
                record = {**record, name: value}
                continue
            raise BadRow(
                f"field {name!r} has {len(value):,} characters, more than a prompt can hold "
                f"(at most {MAX_FIELD_CHARS:,}); cut it with --max-prompt-tokens"
            )
        return record

    def _truncate(self, record: dict, n_tokens: int, data, tokenizer) -> tuple[str, str | None]:
        name = data.truncate_field or self.long_field or self.template.fields[0]
        if name not in self.template.fields:
            raise KTMError(
                f"truncate field {name!r} is not in the template (fields: {self.template.fields})"
            )
        ids = tokenizer(str(record[name]), add_special_tokens=False)["input_ids"]
        keep = len(ids) - (n_tokens - data.max_prompt_tokens)
        if keep < 1:
            raise KTMError(
                f"max_prompt_tokens={data.max_prompt_tokens} leaves no room for field {name!r} "
                f"beside the template; raise it"
            )
        cut = ids[:keep] if data.truncation == "head" else ids[len(ids) - keep :]
        # Decoding and re-tokenizing can shift a token or two; trim until it fits.
        while True:
            text = tokenizer.decode(cut, skip_special_tokens=True)
            prompt, suffix = self.template.render({**record, name: text or " "})
            if prompt_lengths(tokenizer, [(prompt, suffix)])[0] <= data.max_prompt_tokens:
                return prompt, suffix
            cut = cut[:-1] if data.truncation == "head" else cut[1:]
            if not cut:
                raise KTMError(
                    f"cannot fit a prompt into max_prompt_tokens={data.max_prompt_tokens}"
                )


def _class_balanced(rows: list[_Row]) -> list[_Row]:
    """Rows reordered so labels alternate, and cut so that every label is equally frequent:
    any prefix of the result (``max_train``) is class-balanced too."""
    by_label: dict[str, list[_Row]] = {}
    for r in rows:
        by_label.setdefault(r.answer, []).append(r)
    n = min(map(len, by_label.values()))
    return [group[i] for i in range(n) for group in by_label.values()]


def prompt_lengths(tokenizer, rendered: list[tuple[str, str | None]]) -> list[int]:
    """Tokens the model reads before compression, as :meth:`KTMModel.encode_prompts` counts
    them: the prompt with the tokenizer's special tokens, then the suffix without."""
    prompts = token_counts(tokenizer, [p for p, _ in rendered], special=True)
    suffixes = token_counts(tokenizer, [s or "" for _, s in rendered])
    return [p + s for p, s in zip(prompts, suffixes)]
