import pytest
import torch

from ktm import KTMConfig, KTMError
from ktm.merger import MeanMerger, MLPMerger, build_merger, masked_block_mean
from ktm.packing import block_index


def test_block_index_partial_last_block():
    idx = block_index([5, 2], k=2)
    assert idx.tolist() == [[0, 1], [2, 3], [4, -1], [5, 6]]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 8])
def test_block_index_counts(k):
    lengths = [1, k, k + 1, 3 * k - 1]
    idx = block_index(lengths, k)
    assert idx.shape == (sum(-(-t // k) for t in lengths), k)
    assert (idx >= 0).sum().item() == sum(lengths)


def test_block_index_with_context_reads_the_tokens_before_each_block():
    idx = block_index([5, 2], k=2, context=3)
    assert idx.tolist() == [
        [-1, -1, -1, 0, 1],
        [-1, 0, 1, 2, 3],
        [1, 2, 3, 4, -1],
        [-1, -1, -1, 5, 6],  # never the previous prompt's tokens
    ]


def test_context_merger_uses_the_context_and_widens_from_a_plain_one():
    """The context changes the output (a block cut mid-line can tell what came before it);
    a plain merger's weights widened with zero columns compute exactly what they did."""
    from ktm.merger import widen_context

    torch.manual_seed(0)
    plain = MLPMerger(k=2, hidden_size=4, hidden_factor=1.0, init="random")
    wide = MLPMerger(k=2, hidden_size=4, hidden_factor=1.0, init="random", context=2)
    assert wide.mlp[0].in_features == 4 * 4 and wide.mlp[2].out_features == 2 * 4
    own = torch.randn(3, 2, 4)
    ctx_a, ctx_b = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    mask = torch.ones(3, 4, dtype=torch.bool)
    out_a = wide(torch.cat([ctx_a, own], 1), mask)
    assert not torch.allclose(out_a, wide(torch.cat([ctx_b, own], 1), mask))
    wide.load_state_dict(widen_context(plain.state_dict(), wide))
    expected = plain(own, torch.ones(3, 2, dtype=torch.bool))
    torch.testing.assert_close(wide(torch.cat([ctx_a, own], 1), mask), expected)
    # The mean stays over the block's own tokens: with mean-init it is the block mean.
    fresh = MLPMerger(k=2, hidden_size=4, hidden_factor=1.0, context=2)
    torch.testing.assert_close(fresh(torch.cat([ctx_a, own], 1), mask), own.mean(1))


def test_masked_mean_ignores_empty_slots():
    blocks = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    assert torch.equal(masked_block_mean(blocks, mask), torch.tensor([[2.0, 3.0], [5.0, 6.0]]))


def test_mlp_merger_mean_init_starts_at_mean():
    merger = MLPMerger(k=3, hidden_size=8, hidden_factor=2.0, init="mean")
    blocks, mask = torch.randn(5, 3, 8), torch.ones(5, 3, dtype=torch.bool)
    assert torch.allclose(merger(blocks, mask), blocks.mean(dim=1))
    random = MLPMerger(k=3, hidden_size=8, hidden_factor=2.0, init="random")
    assert not torch.allclose(random(blocks, mask), blocks.mean(dim=1))


def test_mlp_merger_sees_order_inside_a_block():
    torch.manual_seed(0)
    merger = MLPMerger(k=2, hidden_size=4, hidden_factor=1.0, init="random")
    a, b = torch.randn(4), torch.randn(4)
    mask = torch.ones(1, 2, dtype=torch.bool)
    ab = merger(torch.stack([a, b])[None], mask)
    ba = merger(torch.stack([b, a])[None], mask)
    assert not torch.allclose(ab, ba)


def test_hidden_factor_any_k_and_paper_defaults():
    assert KTMConfig(k=4).hidden_factor == 0.5  # ktm's default: h = 2d at K = 4
    assert build_merger(KTMConfig(k=4), hidden_size=8).mlp[0].out_features == 2 * 8
    assert build_merger(KTMConfig(k=2), hidden_size=8).mlp[0].out_features == 8
    assert KTMConfig(k=2, merger_hidden_factor=None).hidden_factor == 2.0  # the paper's
    assert KTMConfig(k=4, merger_hidden_factor=None).hidden_factor == 1.5
    m = build_merger(KTMConfig(k=6, merger_hidden_factor=0.5), hidden_size=8)
    assert m.mlp[0].out_features == 3 * 8
    assert isinstance(build_merger(KTMConfig(k=1), 8), MeanMerger)
    assert isinstance(build_merger(KTMConfig(k=4, merger="mean"), 8), MeanMerger)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"k": -1},
        {"k": 2.5},
        {"merger": "conv"},
        {"merger_init": "zeros"},
        {"lora_dropout": 1.5},
        {"merger_hidden_factor": 0},
        {"merger_context": -1},
        {"merger_context": 1.5},
        {"merger_context": 2, "merger": "mean"},
        {"merger_context": 2, "k": 1},
    ],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(KTMError):
        KTMConfig(**kwargs)


def test_config_from_dict_rejects_unknown_fields():
    with pytest.raises(KTMError, match="unknown"):
        KTMConfig.from_dict({"k": 2, "kay": 3})
    assert KTMConfig.from_dict(KTMConfig(k=3).to_dict()) == KTMConfig(k=3)


def test_token_norm_merger_keeps_the_scale_of_its_tokens():
    torch.manual_seed(0)
    merger = MLPMerger(k=3, hidden_size=8, hidden_factor=2.0, init="random", norm="token")
    with torch.no_grad():
        merger.mlp[-1].weight.mul_(1000.0)  # an MLP whose output has blown up
    blocks = torch.randn(4, 3, 8) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    out = merger(blocks, mask)
    norms = blocks.norm(dim=-1)
    expected = (norms * mask).sum(-1) / mask.sum(-1)
    torch.testing.assert_close(out.norm(dim=-1), expected)
    assert build_merger(KTMConfig(k=3, merger_norm="token"), 8).norm == "token"
    with pytest.raises(KTMError, match="merger_norm"):
        KTMConfig(merger_norm="unit")
