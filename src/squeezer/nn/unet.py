"""Temporal U-Net (paper Section 3.1): halve the frame rate mid-network, restore it later.

Adjacent frames in the upper layers of a Conformer are highly similar (paper Figure 2), so the
middle blocks run at 80 ms instead of 40 ms. `TimeReduction` is a stride-2 depthwise conv plus
a pointwise conv; `TimeRecovery` repeats each frame twice, maps it through a linear layer and
adds the skip connection from just before the reduction.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.masks import zero_padded_frames

__all__ = ["TimeRecovery", "TimeReduction"]

KERNEL_SIZE = 5
STRIDE = 2
# kernel - stride frames of zero padding each side, as the official code and NeMo pad.
PADDING = KERNEL_SIZE - STRIDE


class TimeReduction(nn.Module):
    """(B, T, D) -> (B, ceil(T / 2), D): depthwise conv (kernel 5, stride 2) + pointwise."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        D = config.d_model
        self.depthwise = nn.Conv1d(D, D, KERNEL_SIZE, STRIDE, padding=PADDING, groups=D)
        self.pointwise = nn.Linear(D, D)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """ceil(T / 2): frame i of the output is centred near input frame 2i."""
        return torch.div(lengths + 1, STRIDE, rounding_mode="floor")

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, padding_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D), lengths (B,), padding_mask (B, T) -> (B, ceil(T/2), D), lengths."""
        T = x.size(1)
        x = zero_padded_frames(x, padding_mask)
        x = self.depthwise(x.transpose(1, 2))  # (B, D, floor((T + 1) / 2) + 1)
        x = x[:, :, : (T + 1) // STRIDE].transpose(1, 2)  # (B, ceil(T / 2), D)
        return self.pointwise(x), self.output_lengths(lengths)


class TimeRecovery(nn.Module):
    """(B, T/2, D) + skip (B, T, D) -> (B, T, D): repeat x2, linear, add the skip."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """x (B, ceil(T/2), D), skip (B, T, D) -> (B, T, D)."""
        x = x.repeat_interleave(STRIDE, dim=1)[:, : skip.size(1)]  # (B, T, D)
        return skip + self.linear(x)
