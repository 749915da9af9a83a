"""Stochastic depth: per-sample, unbiased, identity in eval, rates rising over the blocks."""

from __future__ import annotations

import pytest
import torch

from squeezer import EncoderConfig, SequenceEncoder
from squeezer.nn.drop_path import DropPath, drop_path_rates
from tests.conftest import shrink


def test_each_sample_is_kept_whole_and_scaled_or_dropped_whole():
    module = DropPath(0.25).train()
    x = torch.rand(4000, 3, 5) + 1.0
    y = module(x)
    kept = (y != 0).flatten(1)  # (B, 15)
    assert torch.all(kept.all(dim=1) | ~kept.any(dim=1))  # never part of a sample
    rows = kept.all(dim=1)
    torch.testing.assert_close(y[rows], x[rows] / 0.75)
    # 4000 Bernoulli(0.75) draws: the kept fraction's sd is 0.007; 5 sd either side.
    assert abs(rows.float().mean().item() - 0.75) < 0.035


def test_identity_in_eval_and_at_rate_zero():
    x = torch.randn(8, 4)
    assert DropPath(0.5).eval()(x) is x
    assert DropPath(0.0).train()(x) is x
    with pytest.raises(ValueError, match=r"drop path rate 1\.0"):
        DropPath(1.0)


def test_rates_rise_linearly_from_zero_to_the_configured_rate():
    assert drop_path_rates(0.2, 5) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert drop_path_rates(0.1, 1) == [0.1]
    config = shrink(EncoderConfig(), drop_path=0.3)
    encoder = SequenceEncoder(config)
    assert [block.drop_path.p for block in encoder.blocks] == pytest.approx([0, 0.1, 0.2, 0.3])


def test_drop_path_adds_no_parameters_and_changes_nothing_in_eval():
    plain = SequenceEncoder(shrink(EncoderConfig()))
    dropping = SequenceEncoder(shrink(EncoderConfig(), drop_path=0.5))
    assert plain.state_dict().keys() == dropping.state_dict().keys()
    dropping.load_state_dict(plain.state_dict())
    x, lengths = torch.randn(2, 60, 20), torch.tensor([60, 41])
    with torch.no_grad():
        assert torch.equal(plain.eval()(x, lengths).features, dropping.eval()(x, lengths).features)


def test_in_training_a_dropped_branch_leaves_only_the_residual():
    """At a rate near 1 every branch of the last Conformer block is dropped for every sample:
    the block is its final LayerNorm of the input."""
    config = shrink(
        EncoderConfig.preset("conformer-s"), drop_path=0.999999, dropout=0.0, position="none"
    )
    encoder = SequenceEncoder(config).train()
    block = encoder.blocks[-1]
    x = torch.randn(3, 7, 32)
    padding_mask = torch.zeros(3, 7, dtype=torch.bool)
    out = block(x, None, padding_mask)  # pos_emb unused: every branch is dropped
    torch.testing.assert_close(out, block.post_block(x))
