"""Lengths <-> padding masks, and the output length of a strided convolution.

One convention everywhere: `padding_mask` is (B, T) bool with True marking a padded frame.
"""

from __future__ import annotations

import torch

__all__ = ["conv_output_lengths", "lengths_to_padding_mask", "zero_padded_frames"]


def lengths_to_padding_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, True where a frame is padding."""
    frames = torch.arange(max_length, device=lengths.device)
    return frames.unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)


def zero_padded_frames(x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """Set padded frames of x (B, T, C) to zero, so ops that mix time only see real frames."""
    return x.masked_fill(padding_mask.unsqueeze(-1), 0.0)


def conv_output_lengths(
    lengths: torch.Tensor, kernel_size: int, stride: int, padding: int
) -> torch.Tensor:
    """Frames a 1-D convolution (no dilation) produces from `lengths` input frames."""
    return torch.div(lengths + 2 * padding - kernel_size, stride, rounding_mode="floor") + 1
