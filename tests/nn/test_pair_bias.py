"""PairBias: the masked Conv2d stack from a pair tensor to one attention bias per head."""

from __future__ import annotations

import pytest
import torch

from squeezer import EncoderConfig, PairBias, SequenceEncoder
from squeezer.nn.masks import lengths_to_padding_mask
from tests.conftest import assert_one_line_error, shrink


def test_a_pair_matrix_gives_the_same_bias_alone_as_in_a_padded_batch():
    module = PairBias(in_channels=2, num_heads=4, hidden=8, kernel_size=5, num_layers=3).double()
    lengths = torch.tensor([11, 6, 1])
    pair = torch.randn(3, 2, 11, 11, dtype=torch.float64)
    pad = lengths_to_padding_mask(lengths, 11)
    pair.masked_fill_(pad[:, None, :, None], float("nan"))  # garbage outside each square
    pair.masked_fill_(pad[:, None, None, :], 1e30)
    with torch.no_grad():
        batch = module(pair, lengths)
        assert batch.shape == (3, 4, 11, 11)
        for row, n in enumerate(lengths.tolist()):
            alone = module(pair[row : row + 1, :, :n, :n], lengths[row : row + 1])
            # float64 convolutions of the same numbers, other blocking: ~1e-15
            torch.testing.assert_close(batch[row, :, :n, :n], alone[0], rtol=1e-10, atol=1e-10)
            assert torch.all(batch[row, :, n:] == 0) and torch.all(batch[row, :, :, n:] == 0)


def test_a_plain_matrix_and_a_single_layer_is_a_per_head_affine_map():
    module = PairBias(in_channels=1, num_heads=3, num_layers=1).double()
    pair = torch.rand(2, 5, 5, dtype=torch.float64)  # (B, T, T): C = 1 implied
    out = module(pair, torch.tensor([5, 5]))
    conv = module.convs[0]
    expected = pair[:, None] * conv.weight.view(1, 3, 1, 1) + conv.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected)


def test_the_bias_trains_end_to_end_through_the_encoder():
    config = shrink(EncoderConfig(), subsampling="none", input_dim=6)
    encoder, pair_bias = SequenceEncoder(config).train(), PairBias(1, config.num_heads, hidden=4)
    x, lengths = torch.randn(2, 9, 6), torch.tensor([9, 7])
    bias = pair_bias(torch.rand(2, 9, 9), lengths)
    encoder(x, lengths, attn_bias=bias).features.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pair_bias.parameters())


@pytest.mark.parametrize(
    ("shape", "names"),
    [((2, 3, 5, 5), ["(B, 1, T, T)", "(2, 3, 5, 5)"]), ((2, 1, 5, 4), ["(2, 1, 5, 4)"])],
)
def test_a_pair_tensor_of_the_wrong_shape_is_a_one_line_error(shape, names):
    with pytest.raises(ValueError) as error:
        PairBias(1, 4)(torch.zeros(shape), torch.tensor([5, 5]))
    assert_one_line_error(str(error.value), "PairBias", *names)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="kernel_size=4"):
        PairBias(1, 4, kernel_size=4)
    with pytest.raises(ValueError, match="num_heads=0"):
        PairBias(1, 0)
