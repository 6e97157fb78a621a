"""Your own data: a JSONL or CSV file, a prompt template over its fields, an answer field.

Classification when ``labels`` are given (the answer field must hold one of them; scored on
the label), free generation otherwise (scored by perplexity and similarity). Example::

    ktm train --task custom --train-file train.csv --test-file test.csv \
        --template "Ticket: {body}\nTeam:" --answer-field team --labels billing,tech,sales
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import KTMError
from .base import register_task
from .record_task import RecordTask
from .records import BadRow, PromptTemplate, text_field


@dataclass
class CustomTask(RecordTask):
    answer_field: str = "answer"

    def with_data(self, data) -> "CustomTask":
        if not data.template:
            raise KTMError(
                "task 'custom' needs --template, e.g. --template 'Review: {text}, Label:'"
            )
        labels = tuple(data.labels or ())
        return CustomTask(
            name=self.name,
            labels=labels,
            positive=None,
            kind="classification" if labels else "generation",
            template=PromptTemplate(
                data.template, data.suffix_template, data.split_field, data.split_marker
            ),
            long_field=data.truncate_field,
            answer_field=data.answer_field,
        )

    def answer(self, record: dict) -> str:
        value = text_field(record, self.answer_field, allow_empty=not self.labels)
        if self.labels and value not in self.labels:
            raise BadRow(f"{self.answer_field} {value!r} is not one of {list(self.labels)}")
        return value


register_task("custom", lambda: CustomTask(name="custom"))
