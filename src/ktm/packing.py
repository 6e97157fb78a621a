"""Cut prompts into blocks, merge them, and lay out a left-padded batch.

Blocks start at each prompt's first token whatever the batch, and padding is added only
after merging (with a zero attention mask), so a prompt's compressed prefix — and hence its
output — does not depend on its neighbours in the batch.

Sequence layout per row: ``[pad …][merged prompt blocks][suffix tokens][answer tokens]``.
With selective expansion (:mod:`ktm.expansion`) some prompt tokens stay raw among the blocks,
in their place, and the runs between them are merged K at a time.
Left padding keeps every row's last position aligned for batched generation.

Position ids are ``compact`` (0, 1, 2, … over each row's real positions) or ``spread`` (a
merged block at the position of its last token, the suffix and answer where they stand in the
uncompressed prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .expansion import segments


@dataclass
class CompressedBatch:
    """A batch ready for the language model.

    Attributes:
        embeds: (B, N, d) input embeddings, left-padded.
        attention_mask: (B, N) long, 0 on padding.
        position_ids: (B, N) long: each row's positions (0 on padding; see the module doc).
        tokens_in: per row, prompt + suffix tokens before compression.
        tokens_out: per row, positions the model reads for them (⌈T/K⌉ + suffix, or the
            expanded layout's length + suffix).
        answer_start: per row, index in N of the first answer position (training only).
        answer_ids: per row, the answer's token ids (training only).
        kept: per row, indices of the prompt tokens kept raw (selective expansion).
    """

    embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    tokens_in: list[int]
    tokens_out: list[int]
    answer_start: list[int] | None = None
    answer_ids: list[list[int]] | None = None
    kept: list[list[int]] | None = None

    @property
    def compression(self) -> float:
        """Share of prompt positions removed, over the batch (0.75 at K = 4)."""
        total_in = sum(self.tokens_in)
        return 1.0 - sum(self.tokens_out) / total_in if total_in else 0.0


def merged_length(tokens: int, k: int) -> int:
    """Embeddings ``tokens`` prompt tokens become when merged K at a time: ⌈T/K⌉."""
    return -(-tokens // k)


def positions_read(prompt_tokens: int, suffix_tokens: int, k: int) -> int:
    """Positions the model reads for a merged prompt and its raw suffix: ⌈T/K⌉ + S.

    This is the length of the input sequence (the cost); a token-reduction baseline at the
    budget of K reads as many.
    """
    return merged_length(prompt_tokens, k) + suffix_tokens


def position_span(prompt_tokens: int, suffix_tokens: int, k: int, positions: str) -> int:
    """Position ids a merged prompt and its raw suffix take up: ⌈T/K⌉ + S with ``compact``
    ids, T + S with ``spread`` ones (each prompt token keeps its own position); what counts
    against the model's context."""
    prefix = prompt_tokens if positions == "spread" else merged_length(prompt_tokens, k)
    return prefix + suffix_tokens


def block_index(
    lengths: Sequence[int],
    k: int,
    context: int = 0,
    raw: Sequence[Sequence[bool] | None] | None = None,
) -> torch.Tensor:
    """Index of each block slot into the flat concatenation of the prompts' tokens.

    Args:
        lengths: tokens per prompt.
        k: block size.
        context: slots before each block for the tokens that precede it in its prompt.
        raw: per prompt, the tokens kept raw (selective expansion, :mod:`ktm.expansion`):
            they are not merged, and blocks restart after each.
    Returns:
        (number of merged blocks, context + K) long; -1 marks empty slots: those past a short
        block's end, and context slots before the prompt's first token.
    """
    starts, ends, origins, offset = [], [], [], 0
    for i, t in enumerate(lengths):
        keep = raw[i] if raw is not None else None
        for start, end, is_raw in segments(t, k, keep):
            if not is_raw:
                starts.append(offset + start)
                ends.append(offset + end)
                origins.append(offset)
        offset += t
    if not starts:
        return torch.empty(0, context + k, dtype=torch.long)
    slots = torch.tensor(starts)[:, None] + torch.arange(-context, k)
    # Context slots reach back within the block's own prompt only.
    real = (slots >= torch.tensor(origins)[:, None]) & (slots < torch.tensor(ends)[:, None])
    return torch.where(real, slots, torch.full_like(slots, -1))


def pack(
    embed: Callable[[torch.Tensor], torch.Tensor],
    merger: nn.Module,
    k: int,
    prompt_ids: Sequence[Sequence[int]],
    suffix_ids: Sequence[Sequence[int]] | None = None,
    answer_ids: Sequence[Sequence[int]] | None = None,
    device: torch.device | str = "cpu",
    positions: str = "compact",
    raw: Sequence[Sequence[bool] | None] | None = None,
    scores: Sequence[torch.Tensor] | None = None,
    states: torch.Tensor | None = None,
) -> CompressedBatch:
    """Embed, merge and lay out a batch.

    Args:
        embed: the base model's input embedding, (n,) long -> (n, d).
        merger: a block merger, (M, C + K, d), (M, C + K) -> (M, d), where C is its
            ``context`` attribute (tokens before the block it also reads; 0 if absent).
        k: block size.
        prompt_ids: per row, token ids to compress.
        suffix_ids: per row, token ids kept as they are after the compressed prompt.
        answer_ids: per row, answer token ids appended (for teacher-forced training).
        device: where the ids go (the embedding's device).
        positions: ``"compact"`` or ``"spread"`` position ids (see the module doc).
        raw: per row, True for each prompt token kept as itself (selective expansion);
            None: every block merged.
        scores: per row, (T,) token scores for a merger that pools by them (``select``).
        states: (sum T, d) the prompt tokens' states after the base model's first layers, for
            a merger that reads them (``merger_layers``; its ``read_states``): merged blocks
            are made of them, raw tokens stay plain embeddings.
    """
    b = len(prompt_ids)
    suffix_ids = suffix_ids if suffix_ids is not None else [[] for _ in range(b)]
    answers = answer_ids if answer_ids is not None else [[] for _ in range(b)]
    raw = raw if raw is not None else [None] * b
    prompt_lens = [len(p) for p in prompt_ids]
    layouts = [segments(t, k, r) for t, r in zip(prompt_lens, raw)]
    tail_lens = [len(s) + len(a) for s, a in zip(suffix_ids, answers)]

    flat_prompt = [t for p in prompt_ids for t in p]
    flat_tail = [t for s, a in zip(suffix_ids, answers) for t in (*s, *a)]
    token_embeds = embed(torch.tensor(flat_prompt + flat_tail, dtype=torch.long, device=device))
    d = merger.hidden_size
    prompt_embeds, tail_embeds = token_embeds[: len(flat_prompt)], token_embeds[len(flat_prompt) :]

    # The merger may read tokens before each block too (its ``context``, 0 for most).
    idx = block_index(prompt_lens, k, getattr(merger, "context", 0), raw).to(device)
    slot_mask = idx >= 0
    block_source = prompt_embeds if states is None else merger.read_states(prompt_embeds, states)
    padded = torch.cat([block_source, prompt_embeds.new_zeros(1, d)])
    blocks = padded[idx]  # -1 picks the zero row at the end
    if not idx.shape[0]:
        merged = prompt_embeds.new_zeros(0, d)
    elif scores is not None:
        flat = torch.cat([*(s.float() for s in scores), torch.zeros(1)]).to(device)
        merged = merger(blocks, slot_mask, flat[idx])
    else:
        merged = merger(blocks, slot_mask)

    # One source table [merged blocks, prompt tokens, tails, zero row], then a (B, N) gather.
    n_merged, n_prompt = merged.shape[0], prompt_embeds.shape[0]
    source = torch.cat([merged, prompt_embeds, tail_embeds, merged.new_zeros(1, d)])
    pad_row = source.shape[0] - 1
    seq_lens = [len(lay) + t for lay, t in zip(layouts, tail_lens)]
    width = max(seq_lens) if seq_lens else 0
    gather = torch.full((b, width), pad_row, dtype=torch.long)
    mask = torch.zeros(b, width, dtype=torch.long)
    spread = torch.zeros(b, width, dtype=torch.long)
    answer_start = []
    block_off, token_off, tail_off = 0, n_merged, n_merged + n_prompt
    for i in range(b):
        start = width - seq_lens[i]
        n, t, t_prompt = len(layouts[i]), tail_lens[i], prompt_lens[i]
        rows, ends = [], []
        for seg_start, seg_end, is_raw in layouts[i]:
            if is_raw:
                rows.append(token_off + seg_start)
            else:
                rows.append(block_off)
                block_off += 1
            ends.append(seg_end - 1)  # a block sits at its last token's position
        gather[i, start : start + n] = torch.tensor(rows, dtype=torch.long)
        gather[i, start + n : width] = torch.arange(tail_off, tail_off + t)
        mask[i, start:] = 1
        spread[i, start : start + n] = torch.tensor(ends, dtype=torch.long)
        spread[i, start + n : width] = torch.arange(t_prompt, t_prompt + t)
        answer_start.append(start + n + len(suffix_ids[i]))
        token_off += t_prompt
        tail_off += t
    embeds = source[gather.to(device)]
    mask = mask.to(device)
    if positions == "spread":
        position_ids = spread.to(device)
    else:
        position_ids = (mask.cumsum(dim=1) - 1).clamp_min(0)
    return CompressedBatch(
        embeds=embeds,
        attention_mask=mask,
        position_ids=position_ids,
        tokens_in=[p + len(s) for p, s in zip(prompt_lens, suffix_ids)],
        tokens_out=[len(lay) + len(s) for lay, s in zip(layouts, suffix_ids)],
        answer_start=answer_start if answer_ids is not None else None,
        answer_ids=[list(a) for a in answers] if answer_ids is not None else None,
        kept=[[a for a, _, is_raw in lay if is_raw] for lay in layouts],
    )
