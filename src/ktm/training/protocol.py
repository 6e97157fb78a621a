"""What the training engine needs of a model: :class:`ktm.model.KTMModel` is one.

The engine reads the model through this protocol, so training and the model layer do not
import each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import torch
from torch import nn


class TrainableModel(Protocol):
    """An ``nn.Module`` with a merger, a tokenizer front end and the training losses."""

    merger: nn.Module
    training: bool

    def encode_prompts(
        self, prompts: Sequence[str], suffixes: Sequence[str] | None = None
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of the compressed parts and of the raw suffixes."""

    def encode_answers(self, answers: Sequence[str]) -> list[list[int]]:
        """Answer token ids, EOS appended."""

    def training_attention(self) -> AbstractContextManager[None]:
        """The fastest attention kernel for training, restored afterwards."""

    def save_pretrained(self, path: str | Path) -> None:
        """Write the model folder."""

    def __call__(
        self,
        prompt_ids: Sequence[Sequence[int]],
        answer_ids: Sequence[Sequence[int]],
        suffix_ids: Sequence[Sequence[int]] | None = None,
        reconstruct: bool = False,
        reconstruct_max_tokens: int | None = None,
        teacher: TrainableModel | None = None,
        distill_blocks: bool = False,
    ) -> torch.Tensor:
        """(3,) summed losses: answer cross entropy, reconstruction, distillation."""

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def train(self, mode: bool = True) -> TrainableModel: ...
