"""attn_bias: added to every block's logits, padding never read, pooled at half rate, fp16-safe."""

from __future__ import annotations

import math

import pytest
import torch

from squeezer import EncoderConfig, SequenceEncoder
from squeezer.nn import attention_bias
from squeezer.nn.attention import MultiHeadSelfAttention
from squeezer.nn.attention_bias import combine_static_bias, pool_to_half_rate
from squeezer.nn.masks import lengths_to_padding_mask
from tests.conftest import assert_one_line_error, shrink

POSITIONS = ["relative", "rope", "alibi", "absolute", "none"]


def sequence_config(**changes) -> EncoderConfig:
    """No subsampling, the U-Net over blocks 1-2 of 4, no dropout: float64-comparable."""
    sizes = dict(subsampling="none", dropout=0.0, attention_dropout=0.0)
    return shrink(EncoderConfig(), **{**sizes, **changes})


def garbage_padded(lengths: list[int], dim: int, heads: int) -> tuple[torch.Tensor, ...]:
    """x (B, T, dim) and a bias (B, H, T, T) in float64, NaN / 1e30 wherever padding is."""
    B, T = len(lengths), max(lengths)
    x = torch.randn(B, T, dim, dtype=torch.float64)
    bias = torch.randn(B, heads, T, T, dtype=torch.float64)
    lengths_t = torch.tensor(lengths)
    pad = lengths_to_padding_mask(lengths_t, T)  # (B, T)
    x[pad] = 1e3
    bias.masked_fill_(pad[:, None, :, None], float("nan"))
    bias.masked_fill_(pad[:, None, None, :], 1e30)
    return x, lengths_t, bias


@pytest.mark.parametrize("position", POSITIONS)
def test_a_sequence_with_its_bias_is_the_same_alone_as_in_a_padded_batch(position):
    config = sequence_config(position=position)
    encoder = SequenceEncoder(config).double().eval()
    lengths = [13, 9, 4, 1]  # odd and even counts at full and half rate
    x, lengths_t, bias = garbage_padded(lengths, config.input_dim, config.num_heads)
    with torch.no_grad():
        batch = encoder(x, lengths_t, attn_bias=bias)
        for row, n in enumerate(lengths):
            alone = encoder(x[row : row + 1, :n], lengths_t[row : row + 1],
                            attn_bias=bias[row : row + 1, :, :n, :n])  # fmt: skip
            # float64 sums reordered by the batch shape: ~1e-15 of |y| < 4 (LayerNorm).
            torch.testing.assert_close(batch.features[row, :n], alone.features[0],
                                       rtol=1e-10, atol=1e-10)  # fmt: skip
    assert torch.isfinite(batch.features).all()


def test_attention_adds_the_bias_to_its_logits_float64_reference():
    config = sequence_config(d_model=16, num_heads=2, position="none")
    module = MultiHeadSelfAttention(config).double().eval()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    padding_mask = lengths_to_padding_mask(torch.tensor([7, 5]), 7)
    user = torch.randn(2, 2, 7, 7, dtype=torch.float64)
    static = combine_static_bias(padding_mask, torch.float64, user=user)
    with torch.no_grad():
        ours = module(x, None, padding_mask, static_bias=static)
        q, k, v = (layer(x).view(2, 7, 2, 8).transpose(1, 2)
                   for layer in (module.linear_q, module.linear_k, module.linear_v))  # fmt: skip
        scores = q @ k.transpose(-1, -2) / math.sqrt(8) + user  # (B, H, T, T)
        scores = scores.masked_fill(padding_mask[:, None, None, :], float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 7, 16)
        reference = module.linear_out(out)
    # float64 sums of 8-16 terms of size ~1: ~1e-15. Padded query rows read no bias at all.
    real = ~padding_mask
    torch.testing.assert_close(ours[real], reference[real], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("position", POSITIONS)
def test_explicit_and_sdpa_paths_take_the_same_bias(position):
    config = sequence_config(position=position)
    encoder = SequenceEncoder(config).double()
    x, lengths, bias = garbage_padded([11, 6], config.input_dim, config.num_heads)
    with torch.no_grad():
        sdpa = encoder.eval()(x, lengths, attn_bias=bias).features
        encoder.train()  # the explicit attention path; no dropout anywhere
        for module in encoder.modules():  # batch statistics are not the attention's business
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        explicit = encoder(x, lengths, attn_bias=bias).features
    torch.testing.assert_close(explicit, sdpa, rtol=1e-10, atol=1e-10)  # float64: ~1e-15


def test_a_constant_bias_per_query_changes_nothing_and_a_per_key_bias_does():
    """Softmax is shift-invariant along keys: the bias must enter the logits, not elsewhere."""
    config = sequence_config(position="relative")
    encoder = SequenceEncoder(config).double().eval()
    x = torch.randn(1, 9, config.input_dim, dtype=torch.float64)
    lengths = torch.tensor([9])
    per_query = torch.randn(1, config.num_heads, 9, 1, dtype=torch.float64).expand(-1, -1, -1, 9)
    per_key = torch.randn(1, 1, 1, 9, dtype=torch.float64).expand(-1, -1, 9, -1) * 3
    with torch.no_grad():
        plain = encoder(x, lengths).features
        shifted = encoder(x, lengths, attn_bias=per_query).features
        keyed = encoder(x, lengths, attn_bias=per_key).features
    torch.testing.assert_close(shifted, plain, rtol=1e-10, atol=1e-10)
    assert (keyed - plain).abs().max() > 1e-3


def test_shared_sequence_and_callable_forms_agree_and_per_block_biases_differ():
    config = sequence_config()
    encoder = SequenceEncoder(config).double().eval()
    x, lengths, bias = garbage_padded([10, 7], config.input_dim, config.num_heads)
    others = [torch.randn_like(bias) for _ in range(config.num_layers)]
    with torch.no_grad():
        shared = encoder(x, lengths, attn_bias=bias).features
        listed = encoder(x, lengths, attn_bias=[bias] * config.num_layers).features
        called = encoder(x, lengths, attn_bias=lambda index: bias).features
        per_block = encoder(x, lengths, attn_bias=others).features
        per_block_called = encoder(x, lengths, attn_bias=others.__getitem__).features
    assert torch.equal(shared, listed) and torch.equal(shared, called)
    assert torch.equal(per_block, per_block_called)
    assert (per_block - shared).abs().max() > 1e-3


def test_a_shared_bias_is_combined_once_per_frame_rate(monkeypatch):
    """Twelve blocks sharing one bias pay for combining it twice (full and half rate)."""
    calls = []
    original = attention_bias.combine_static_bias

    def counting(*args, **kwargs):
        calls.append(args[0].size(1))  # the frame count it was built for
        return original(*args, **kwargs)

    monkeypatch.setattr("squeezer.nn.encoder.combine_static_bias", counting)
    config = sequence_config(num_layers=12, time_reduce_idx=3, time_recover_idx=10)
    encoder = SequenceEncoder(config).eval()
    bias = torch.randn(1, config.num_heads, 9, 9)
    with torch.no_grad():
        encoder(torch.randn(2, 9, config.input_dim), torch.tensor([9, 8]), attn_bias=bias)
    assert calls == [9, 5]
    calls.clear()
    with torch.no_grad():  # one tensor per block: one combination each
        encoder(torch.randn(2, 9, config.input_dim), torch.tensor([9, 8]),
                attn_bias=[bias.clone() for _ in range(12)])  # fmt: skip
    assert calls == [9] * 3 + [5] * 7 + [9] * 2


def test_half_rate_pooling_is_the_mean_of_real_pairs_under_each_half_rate_pair():
    T = 7
    bias = torch.randn(2, 3, T, T, dtype=torch.float64)
    lengths = torch.tensor([7, 4])
    pad = lengths_to_padding_mask(lengths, T)
    bias.masked_fill_(pad[:, None, :, None] | pad[:, None, None, :], float("nan"))
    pooled = pool_to_half_rate(bias, pad)
    assert pooled.shape == (2, 3, 4, 4)
    for b, n in enumerate(lengths.tolist()):
        for i in range(4):
            for j in range(4):
                rows = [r for r in (2 * i, 2 * i + 1) if r < n]
                cols = [c for c in (2 * j, 2 * j + 1) if c < n]
                if rows and cols:
                    expected = bias[b][:, rows][:, :, cols].mean(dim=(1, 2))  # (H,)
                else:
                    expected = torch.zeros(3, dtype=torch.float64)
                torch.testing.assert_close(pooled[b, :, i, j], expected)


def test_a_broadcast_bias_pools_per_sequence():
    """One (1, 1, T, T) bias for a batch of different lengths pools to (B, 1, T', T')."""
    bias = torch.randn(1, 1, 5, 5)
    pad = lengths_to_padding_mask(torch.tensor([5, 3]), 5)
    pooled = pool_to_half_rate(bias, pad)
    assert pooled.shape == (2, 1, 3, 3)
    torch.testing.assert_close(pooled[1, 0, 1, 1], bias[0, 0, 2, 2])  # frame 3 is padding


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("training", [False, True])
def test_autocast_with_huge_and_infinite_biases_stays_finite(dtype, training):
    config = sequence_config(position="alibi", dropout=0.1, attention_dropout=0.1)
    encoder = SequenceEncoder(config).train(training)
    x = torch.randn(2, 12, config.input_dim)
    lengths = torch.tensor([12, 7])
    bias = torch.randn(2, config.num_heads, 12, 12) * 1e6  # beyond fp16's 65504
    bias[:, :, :, 3] = float("-inf")  # a pair masked by the user
    bias[1, :, 7:] = float("nan")  # padding rows
    with torch.autocast("cpu", dtype=dtype):
        out = encoder(x, lengths, attn_bias=bias).features
    assert torch.isfinite(out).all()
    if training:
        out.float().square().mean().backward()
        grads = [p.grad for p in encoder.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_gradient_reaches_the_bias():
    config = sequence_config()
    encoder = SequenceEncoder(config).train()
    bias = torch.zeros(1, config.num_heads, 8, 8, requires_grad=True)
    out = encoder(torch.randn(2, 8, config.input_dim), torch.tensor([8, 5]), attn_bias=bias)
    out.features.square().sum().backward()
    assert bias.grad is not None and bias.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("bias", "names"),
    [
        (torch.zeros(2, 4, 9, 8), ["block 0", "(2, 4, 9, 8)", "(B, H, T, T)"]),
        (torch.zeros(3, 4, 9, 9), ["block 0", "(3, 4, 9, 9)"]),
        (torch.zeros(2, 5, 9, 9), ["block 0", "(2, 5, 9, 9)"]),
        (torch.zeros(2, 4, 9, 9, dtype=torch.long), ["block 0", "float tensor"]),
        ([torch.zeros(9, 9)] * 3, ["3 tensors", "4 blocks"]),
        ("bias", ["attn_bias", "str"]),
    ],
)
def test_a_bias_that_does_not_fit_is_a_one_line_error(bias, names):
    config = sequence_config()
    encoder = SequenceEncoder(config).eval()
    with pytest.raises((ValueError, TypeError)) as error:
        encoder(torch.randn(2, 9, config.input_dim), torch.tensor([9, 4]), attn_bias=bias)
    assert_one_line_error(str(error.value), *names)


def test_a_per_block_bias_of_the_wrong_shape_names_its_block():
    config = sequence_config()
    encoder = SequenceEncoder(config).eval()
    biases = [torch.zeros(9, 9)] * 2 + [torch.zeros(8, 8)] * 2
    with pytest.raises(ValueError) as error:
        encoder(torch.randn(1, 9, config.input_dim), torch.tensor([9]), attn_bias=biases)
    assert_one_line_error(str(error.value), "block 2", "(8, 8)")
