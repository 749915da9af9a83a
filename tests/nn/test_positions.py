"""Positional schemes: their maths, that each one injects order, and lengths never seen."""

from __future__ import annotations

import math

import pytest
import torch

from squeezer import EncoderConfig, SequenceEncoder
from squeezer.nn.attention import MultiHeadSelfAttention, padding_key_bias
from squeezer.nn.masks import lengths_to_padding_mask
from squeezer.nn.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rotary,
    rotary_angles,
    sinusoidal_positions,
)
from tests.conftest import shrink

CPU = torch.device("cpu")
POSITIONS = ["relative", "rope", "alibi", "absolute", "none"]


def test_alibi_slopes_follow_the_paper_for_powers_of_two_and_between():
    assert alibi_slopes(8).tolist() == [2.0**-k for k in range(1, 9)]
    assert alibi_slopes(4).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]
    # 6 heads: the 4-head series, then every other slope of the 8-head series
    assert alibi_slopes(6).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    assert alibi_slopes(1).tolist() == [2.0**-8]
    assert len(set(alibi_slopes(12).tolist())) == 12


def test_alibi_bias_is_symmetric_and_linear_in_distance():
    bias = alibi_bias(6, 3, CPU, torch.float64)  # (1, H, T, T)
    slopes = alibi_slopes(3)
    assert bias.shape == (1, 3, 6, 6)
    assert torch.equal(bias, bias.transpose(-1, -2))
    for i, j in [(0, 0), (0, 5), (4, 1)]:
        torch.testing.assert_close(bias[0, :, i, j], -slopes * abs(i - j))


def test_rotary_scores_depend_on_the_distance_alone():
    angles = rotary_angles(64, 8, CPU, torch.float64)  # (2, T, dh/2)
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    rotated_q = apply_rotary(q.expand(1, 1, 64, 8), angles)[0, 0]  # (T, dh): q at each position
    rotated_k = apply_rotary(k.expand(1, 1, 64, 8), angles)[0, 0]
    scores = rotated_q @ rotated_k.T  # (T, T): query position i, key position j
    for shift in (1, 17, 40):
        # float64 rotations of unit-size vectors: ~1e-15
        torch.testing.assert_close(scores[:-shift, :-shift], scores[shift:, shift:])
    torch.testing.assert_close(rotated_q.norm(dim=-1), q.norm().expand(64))  # rotations


def test_sinusoidal_positions_start_at_sin_0_cos_0_and_take_odd_widths():
    table = sinusoidal_positions(5, 7, CPU, torch.float64)
    assert table.shape == (5, 7)
    assert table[0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    torch.testing.assert_close(table[3, 0], torch.tensor(math.sin(3.0), dtype=torch.float64))


@pytest.mark.parametrize("position", ["rope", "alibi"])
def test_attention_matches_a_direct_float64_reference(position):
    config = EncoderConfig(d_model=16, num_heads=2, attention_dropout=0.0, position=position)
    module = MultiHeadSelfAttention(config).double().eval()
    B, T, H, dh = 2, 7, 2, 8
    x = torch.randn(B, T, 16, dtype=torch.float64)
    padding_mask = lengths_to_padding_mask(torch.tensor([7, 4]), T)
    with torch.no_grad():
        if position == "rope":
            angles = rotary_angles(T, dh, CPU, torch.float64)
            ours = module(x, angles, padding_mask)
        else:
            static = padding_key_bias(padding_mask, torch.float64) + alibi_bias(
                T, H, CPU, torch.float64
            )
            ours = module(x, None, padding_mask, static_bias=static)
        q, k, v = (layer(x).view(B, T, H, dh) for layer in
                   (module.linear_q, module.linear_k, module.linear_v))  # fmt: skip
        out = torch.zeros(B, T, H, dh, dtype=torch.float64)
        slopes = alibi_slopes(H)
        for b in range(B):
            for h in range(H):
                for i in range(T):
                    scores = torch.full((T,), -math.inf, dtype=torch.float64)
                    for j in range(T):
                        if padding_mask[b, j]:
                            continue
                        if position == "rope":  # rotate channel pairs (c, c + 4) by m * theta_c
                            qi, kj = rotate(q[b, i, h], i), rotate(k[b, j, h], j)
                            scores[j] = qi @ kj / math.sqrt(dh)
                        else:
                            scores[j] = q[b, i, h] @ k[b, j, h] / math.sqrt(dh)
                            scores[j] -= slopes[h] * abs(i - j)
                    out[b, i, h] = scores.softmax(0) @ v[b, :, h]
        reference = module.linear_out(out.reshape(B, T, 16))
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)  # float64: ~1e-15


def rotate(vector: torch.Tensor, position: int) -> torch.Tensor:
    """RoPE by hand: pair (c, c + dh/2) turned by position * 10000^(-2c/dh)."""
    half = vector.numel() // 2
    out = vector.clone()
    for c in range(half):
        angle = position * 10000.0 ** (-2 * c / vector.numel())
        a, b = vector[c], vector[c + half]
        out[c] = a * math.cos(angle) - b * math.sin(angle)
        out[c + half] = a * math.sin(angle) + b * math.cos(angle)
    return out


def order_blind_config(position: str) -> EncoderConfig:
    """Nothing mixes time but attention: no U-Net, kernel 1, no subsampling."""
    return shrink(EncoderConfig(), subsampling="none", time_reduce_idx=None,
                  time_recover_idx=None, conv_kernel_size=1, position=position)  # fmt: skip


@pytest.mark.parametrize("position", POSITIONS)
def test_every_scheme_but_none_tells_order_apart(position):
    """Without positions attention is permutation-equivariant; every scheme must break that."""
    encoder = SequenceEncoder(order_blind_config(position)).double().eval()
    x = torch.randn(1, 10, 20, dtype=torch.float64)
    order = torch.randperm(10)
    with torch.no_grad():
        permuted_out = encoder(x[:, order], torch.tensor([10])).features
        out_permuted = encoder(x, torch.tensor([10])).features[:, order]
    difference = (permuted_out - out_permuted).abs().max()
    if position == "none":
        assert difference < 1e-10  # float64 reordered sums
    else:
        assert difference > 1e-3


@pytest.mark.parametrize("position", POSITIONS)
def test_every_scheme_runs_past_any_length_seen_before(position):
    config = shrink(EncoderConfig(), subsampling="none", position=position)
    encoder = SequenceEncoder(config).eval()
    with torch.no_grad():
        for length in (3, 700, 1501):
            out = encoder(torch.randn(1, length, 20), torch.tensor([length]))
            assert out.features.shape == (1, length, 32)
            assert torch.isfinite(out.features).all()


def test_only_the_relative_scheme_has_position_parameters():
    for position in POSITIONS:
        names = {n for n, _ in SequenceEncoder(shrink(EncoderConfig(), position=position))
                 .named_parameters()}  # fmt: skip
        has = any("linear_pos" in n or "pos_bias" in n for n in names)
        assert has == (position == "relative"), position


def test_rope_needs_an_even_head_size_and_unknown_schemes_are_refused():
    with pytest.raises(ValueError, match="even head size"):
        EncoderConfig(d_model=18, num_heads=2, position="rope")
    with pytest.raises(ValueError, match="position='learned' is not one of relative, rope"):
        EncoderConfig(position="learned")
