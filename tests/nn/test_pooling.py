"""Pooling over real frames: mean and GeM ignore padding; GeM spans mean to max."""

from __future__ import annotations

import torch

from squeezer.nn import GeMPool, MeanPool, masked_mean


def test_masked_mean_ignores_padding():
    features = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    assert masked_mean(features, torch.tensor([2, 3])).flatten().tolist() == [2.0, 4.0]
    assert torch.equal(MeanPool()(features, torch.tensor([2, 3])), masked_mean(features,
                       torch.tensor([2, 3])))  # fmt: skip


def test_gem_at_p_1_is_the_mean_and_at_large_p_nears_the_max():
    x = torch.rand(3, 9, 4, dtype=torch.float64) + 0.1
    lengths = torch.tensor([9, 5, 1])
    x[1, 5:] = 1e6  # padding must not count
    mean = GeMPool(p=1.0, learnable=False).double()(x, lengths)
    torch.testing.assert_close(mean, masked_mean(x, lengths))
    near_max = GeMPool(p=200.0, learnable=False).double()(x, lengths)
    for row, n in enumerate(lengths.tolist()):
        largest = x[row, :n].max(dim=0).values
        # (mean x^p)^(1/p) >= max * n^(-1/p): within 1.1 % of the max for n <= 9, p = 200
        assert torch.all(near_max[row] <= largest * (1 + 1e-12))
        assert torch.all(near_max[row] >= largest * n ** (-1 / 200))


def test_gem_learns_its_exponent_and_clamps_below_eps():
    pool = GeMPool()
    x = torch.randn(2, 6, 3)  # negatives are clamped to eps, as GeM is defined for x >= 0
    out = pool(x, torch.tensor([6, 4]))
    assert torch.isfinite(out).all() and torch.all(out > 0)
    out.sum().backward()
    assert pool.p.grad is not None and torch.isfinite(pool.p.grad)


def test_gem_of_bf16_features_accumulates_in_float32():
    x = torch.rand(1, 4000, 2).to(torch.bfloat16) + 1
    out = GeMPool(p=1.0)(x, torch.tensor([4000]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x.float().mean(dim=1), rtol=1e-5, atol=0)
