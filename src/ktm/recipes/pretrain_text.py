"""Text for reconstruction pre-training: read it, cut it into chunks of a fixed number of
tokens, and pose each chunk as an example (the chunk compressed, then repeated after
:data:`ktm.model.RECONSTRUCT_MARKER`, as in-context autoencoders train); and the held-out
reconstruction loss that measures it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import KTMError
from ..model import RECONSTRUCT_MARKER, KTMModel
from ..training.data import Example


class NotEnoughText(KTMError):
    """Too little text to cut into reconstruction chunks."""


def read_texts(paths: Sequence[str | Path], field: str = "text") -> list[str]:
    """Texts from ``.txt`` files (blank-line separated paragraphs) or JSONL (``field``)."""
    texts: list[str] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise KTMError(f"text file not found: {path}")
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise KTMError(f"{path} is not UTF-8 text ({e})") from None
        if path.suffix == ".jsonl":
            for lineno, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line).get(field)
                except (json.JSONDecodeError, AttributeError):
                    raise KTMError(f"{path}:{lineno}: not a JSON object") from None
                if not isinstance(value, str):
                    raise KTMError(f"{path}:{lineno}: field {field!r} is missing or not text")
                if value.strip():
                    texts.append(value)
        else:
            texts += [p for p in content.split("\n\n") if p.strip()]
    if not texts:
        raise KTMError("no text found in " + ", ".join(map(str, paths)))
    return texts


def text_chunks(
    tokenizer,
    texts: Sequence[str],
    chunk_tokens: int,
    max_chunks: int,
    min_tokens: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Cut the concatenated texts into pieces of ``chunk_tokens`` tokens (decoded to text), or,
    with ``min_tokens``, of lengths drawn evenly from [min_tokens, chunk_tokens] (seeded): a
    merger pre-trained on one length reads prompts of that length only (its LoRA learns where
    the regenerated tokens start)."""
    import random

    low = chunk_tokens if min_tokens is None else min_tokens
    if not 2 <= low <= chunk_tokens:
        raise KTMError(f"chunk lengths must satisfy 2 <= min <= max, got {low} and {chunk_tokens}")
    draw = random.Random(seed)
    chunks, buffer = [], []
    n = draw.randint(low, chunk_tokens)
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        buffer += ids + [tokenizer.eos_token_id]
        while len(buffer) >= n and len(chunks) < max_chunks:
            piece = tokenizer.decode(buffer[:n], skip_special_tokens=True).strip()
            buffer = buffer[n:]
            n = draw.randint(low, chunk_tokens)
            if piece:
                chunks.append(piece)
        if len(chunks) >= max_chunks:
            break
    if not chunks:
        raise NotEnoughText(f"the texts hold fewer than {chunk_tokens} tokens")
    return chunks


def reconstruction_examples(chunks: Sequence[str], continuation: float = 0.0) -> list[Example]:
    """Each chunk is compressed, then repeated after the marker; or, for a ``continuation``
    share of them (every chunk whose running share falls behind it, so the mix is even), the
    chunk is compressed and the LM goes on with the next chunk of the text, as language
    modelling over a compressed context (ICAE's second objective)."""
    out, taken = [], 0
    for i, c in enumerate(chunks):
        if i + 1 < len(chunks) and taken < continuation * (i + 1):
            taken += 1
            out.append(Example(prompt=c, answer=chunks[i + 1]))
        else:
            out.append(Example(prompt=c, answer=c, suffix=RECONSTRUCT_MARKER))
    return out


def reconstruction_nll(model: KTMModel, examples, batch_size: int = 16) -> dict:
    """Per-token reconstruction loss on held-out chunks."""
    import torch

    from ..training.trainer import tokenize_examples

    data = tokenize_examples(model, examples)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            idx = range(i, min(i + batch_size, len(examples)))
            prompts, answers, suffixes = data.select(idx)
            total += model.answer_nll(prompts, answers, suffixes).item()
            count += sum(map(len, answers))
    return {"reconstruction_nll": total / count}


def pretraining_chunks(cfg, tokenizer) -> list[str]:
    """The text of ``cfg`` (a :class:`~ktm.recipes.pretrain.PretrainConfig`) cut into chunks:
    the task's training prompts first (each once: balanced data repeats them; no labels), then
    the general corpus, then the text files."""
    from .corpus import general_texts
    from .data import load_stages

    texts = read_texts(cfg.texts, cfg.text_field) if cfg.texts else []
    if cfg.corpus is not None:
        texts = general_texts()[0] + texts
    if cfg.data is not None:
        stages, _ = load_stages(cfg.data, tokenizer)
        prompts = list(dict.fromkeys(e.prompt for stage in stages for e in stage.train))
        texts = prompts + texts
    chunks = text_chunks(
        tokenizer, texts, cfg.chunk_tokens, cfg.max_chunks, cfg.chunk_min_tokens, cfg.train.seed
    )
    if len(chunks) < 2:
        raise NotEnoughText(
            f"the text holds {len(chunks)} chunk of {cfg.chunk_tokens} tokens; need at least 2"
        )
    return chunks
