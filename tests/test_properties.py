"""Property tests of the compression path: random lengths, K, batch compositions, suffixes."""

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktm.merger import MeanMerger, MLPMerger
from ktm.packing import block_index, pack

D = 8
EMB = torch.nn.Embedding(100, D)


def _embed(ids: torch.Tensor) -> torch.Tensor:
    return EMB(ids).detach()


rows = st.lists(
    st.tuples(
        st.lists(st.integers(1, 99), min_size=1, max_size=40),  # prompt
        st.lists(st.integers(1, 99), max_size=5),  # suffix
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 16), batch=rows)
def test_block_index_covers_every_token_once(k, batch):
    lengths = [len(p) for p, _ in batch]
    idx = block_index(lengths, k)
    assert idx.shape == (sum(math.ceil(t / k) for t in lengths), k)
    real = idx[idx >= 0]
    assert sorted(real.tolist()) == list(range(sum(lengths)))
    # Only a prompt's last block may have empty slots, and only at its end.
    assert ((idx >= 0).int().diff(dim=1) <= 0).all()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 16), batch=rows, mlp=st.booleans())
def test_pack_shapes_masks_counts_and_batch_invariance(k, batch, mlp):
    torch.manual_seed(0)
    merger = MLPMerger(k, D, 1.0, init="random") if (mlp and k > 1) else MeanMerger(k, D)
    prompts = [p for p, _ in batch]
    suffixes = [s for _, s in batch]
    out = pack(_embed, merger, k, prompts, suffixes)
    n = [math.ceil(len(p) / k) + len(s) for p, s in batch]
    assert out.tokens_out == n
    assert out.tokens_in == [len(p) + len(s) for p, s in batch]
    assert out.embeds.shape == (len(batch), max(n), D)
    assert out.attention_mask.sum(dim=1).tolist() == n
    for i, m in enumerate(n):  # left padding; positions count from the first real one
        width = out.embeds.shape[1]
        assert out.attention_mask[i, : width - m].sum() == 0
        assert out.position_ids[i, width - m :].tolist() == list(range(m))
        # A row's compressed prefix is the same alone as in the batch.
        alone = pack(_embed, merger, k, [prompts[i]], [suffixes[i]])
        with torch.no_grad():
            torch.testing.assert_close(out.embeds[i, width - m :], alone.embeds[0])
    assert torch.all(out.embeds[out.attention_mask == 0] == 0)
