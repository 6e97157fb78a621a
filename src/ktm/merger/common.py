"""Block mergers: K token embeddings in, one embedding out. Helpers every merger shares.

A merger sees blocks that were cut per prompt (never across prompts or padding), as a
flat batch ``(N, K, d)`` with a token mask ``(N, K)``: a prompt's last block may be partial,
and its missing slots are zero and masked out. An MLP merger with ``context`` C > 0 gets
``(N, C + K, d)``: the C tokens before each block first (masked before the prompt starts).
"""

from __future__ import annotations

import torch


def masked_block_mean(blocks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens of each block.

    Args:
        blocks: (N, K, d) embeddings, zero where ``mask`` is False.
        mask: (N, K) bool, True for real tokens; every block has at least one.
    Returns:
        (N, d)
    """
    weights = mask.to(blocks.dtype).unsqueeze(-1)
    return (blocks * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def select_token(blocks: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The real token of each block that ``scores`` ranks highest (the first on a tie).

    Args:
        blocks: (N, K, d) embeddings; mask: (N, K) bool; scores: (N, K), higher = keep.
    Returns:
        (N, d): one of each block's own token embeddings, unchanged.
    """
    ranked = scores.float().masked_fill(~mask, float("-inf"))
    pick = ranked.argmax(dim=1)  # the first maximum
    return blocks[torch.arange(blocks.shape[0], device=blocks.device), pick]


def pool_block(
    blocks: torch.Tensor, mask: torch.Tensor, pool: str, scores: torch.Tensor | None
) -> torch.Tensor:
    """A block's base embedding: its mean (``pool="mean"``) or its highest-ranked token
    (``"select"``, which needs ``scores``): (N, K, d), (N, K), (N, K) -> (N, d)."""
    if pool == "select":
        if scores is None:
            raise ValueError("select pooling needs token scores")
        return select_token(blocks, mask, scores)
    return masked_block_mean(blocks, mask)


def match_token_norm(
    merged: torch.Tensor, blocks: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Rescale each merged vector to the mean norm of its block's real token embeddings.

    The merged input then has the scale the language model expects of a token, whatever the
    MLP's output grows to during training: (N, d), (N, K, d), (N, K) -> (N, d).
    """
    weights = mask.to(blocks.dtype)
    target = (blocks.norm(dim=-1) * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)
    return merged * (target / merged.norm(dim=-1).clamp_min(1e-6)).unsqueeze(-1)
