"""Positional schemes other than the paper's relative one: RoPE, ALiBi, absolute sinusoids.

The paper's Transformer-XL relative positions live in `attention.py` (with the shift that
reads them out). Each scheme here is computed from the sequence length on every call, with
no table of a fixed size, so a model trained on short sequences runs on any longer one.

- RoPE (Su et al. 2021, "RoFormer"): queries and keys are rotated by angles that grow with
  the position, so their dot product depends on the distance alone.
- ALiBi (Press et al. 2022, "Train Short, Test Long"), symmetric as in encoders: head h adds
  `-slope_h * |i - j|` to the score of query i for key j.
- Absolute sinusoids (Vaswani et al. 2017): added to the input once, before the blocks.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "alibi_bias",
    "alibi_slopes",
    "apply_rotary",
    "rotary_angles",
    "sinusoidal_positions",
]

ROPE_BASE = 10000.0


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # float32 at least: half-precision angles are off by whole radians at long positions.
    return torch.float64 if dtype == torch.float64 else torch.float32


def sinusoidal_positions(
    length: int, d_model: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Absolute positions 0 .. T-1 as sinusoids: (T, D), sines in even channels, cosines odd."""
    compute = _compute_dtype(dtype)
    positions = torch.arange(length, device=device, dtype=compute)
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=compute) * (-math.log(10000.0) / d_model)
    )
    angles = positions.unsqueeze(1) * inv_freq  # (T, D / 2)
    encoding = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (T, D / 2, 2)
    return encoding.flatten(1)[:, :d_model].to(dtype)  # (T, D)


def rotary_angles(
    length: int, head_dim: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """cos and sin of RoPE's angles for positions 0 .. T-1: (2, T, dh / 2)."""
    compute = _compute_dtype(dtype)
    positions = torch.arange(length, device=device, dtype=compute)
    inv_freq = ROPE_BASE ** (
        -torch.arange(0, head_dim, 2, device=device, dtype=compute) / head_dim
    )  # (dh / 2,)
    angles = positions.unsqueeze(1) * inv_freq  # (T, dh / 2)
    return torch.stack([angles.cos(), angles.sin()]).to(dtype)  # (2, T, dh / 2)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (c, c + dh/2) of x (B, H, T, dh) by `rotary_angles` (2, T, dh/2).

    The half-split pairing (GPT-NeoX's) keeps both halves contiguous: two slices, no
    interleaved gather.
    """
    cos, sin = angles.to(x.dtype).unbind(0)  # (T, dh / 2) each
    first, second = x.chunk(2, dim=-1)  # (B, H, T, dh / 2) each
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes for any head count: (H,).

    For a power of two n the slopes are the geometric series 2^(-8/n), 2^(-16/n), ...,
    2^(-8). Otherwise the paper takes the series of the largest power of two m below n and
    fills the rest with every other slope of the series for 2m (Press et al., Section 3).
    """
    if num_heads < 1:
        raise ValueError(f"num_heads={num_heads} must be positive")

    def series(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (k + 1) / n) for k in range(n)]

    m = 2 ** math.floor(math.log2(num_heads))
    slopes = series(m) + series(2 * m)[0::2][: num_heads - m]
    return torch.tensor(slopes, dtype=torch.float64)


def alibi_bias(
    length: int, num_heads: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Symmetric ALiBi: -slope_h * |i - j| for query i and key j, (1, H, T, T)."""
    positions = torch.arange(length, device=device)
    distance = (positions.unsqueeze(0) - positions.unsqueeze(1)).abs()  # (T, T)
    slopes = alibi_slopes(num_heads).to(device=device, dtype=_compute_dtype(dtype))  # (H,)
    bias = -slopes.view(-1, 1, 1) * distance.to(slopes.dtype)  # (H, T, T)
    return bias.unsqueeze(0).to(dtype)  # (1, H, T, T)
