"""PairBias: an attention bias per head from a pair tensor, as the Ribonanza solutions built it.

The 2nd-place Ribonanza model (RNA folding) turned a (T, T) base-pair-probability matrix into
one bias per head with a small 2-D CNN, Conv2d(1 -> 64, k 7) -> ReLU -> Conv2d(64 -> H), and
added it to the raw attention scores of every block. This module is that CNN with padding
handled: entries outside each sequence's real (L, L) square are zeroed before every
convolution, so a sequence's bias is the same alone as inside a padded batch (the zeros are
what a convolution's own zero padding reads at the square's edge).

    pair (B, C, T, T) or (B, T, T), lengths (B,) -> bias (B, H, T, T), 0 outside the square
"""

from __future__ import annotations

import torch
from torch import nn

from squeezer.nn.masks import lengths_to_padding_mask

__all__ = ["PairBias"]


class PairBias(nn.Module):
    """Masked Conv2d stack: C pair channels -> `hidden` -> ... -> one bias map per head.

    Args:
        in_channels: C, the pair tensor's channels (1 for a plain (T, T) matrix).
        num_heads: H, the encoder's attention heads.
        hidden: channels of the hidden convolutions.
        kernel_size: odd kernel of the hidden convolutions (the last one is 1 x 1).
        num_layers: convolutions in all, at least 1 (1: a single 1 x 1 map C -> H).
    """

    def __init__(
        self,
        in_channels: int,
        num_heads: int,
        hidden: int = 64,
        kernel_size: int = 7,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_heads", num_heads),
                            ("hidden", hidden), ("num_layers", num_layers)):  # fmt: skip
            if value < 1:
                raise ValueError(f"PairBias {name}={value} must be positive")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"PairBias kernel_size={kernel_size} must be odd and >= 1")
        self.in_channels = in_channels
        self.convs = nn.ModuleList()
        channels = in_channels
        for _ in range(num_layers - 1):  # k x k convolutions, "same" padding
            self.convs.append(nn.Conv2d(channels, hidden, kernel_size, padding=kernel_size // 2))
            channels = hidden
        self.convs.append(nn.Conv2d(channels, num_heads, 1))  # one map per head
        self.activation = nn.ReLU()

    def forward(self, pair: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """pair (B, C, T, T) or (B, T, T) when C = 1, lengths (B,) -> bias (B, H, T, T)."""
        if pair.dim() == 3:
            pair = pair.unsqueeze(1)  # (B, 1, T, T)
        if pair.dim() != 4 or pair.size(1) != self.in_channels or pair.size(2) != pair.size(3):
            raise ValueError(
                f"PairBias expects a pair tensor (B, {self.in_channels}, T, T), "
                f"got {tuple(pair.shape)}"
            )
        padding_mask = lengths_to_padding_mask(lengths, pair.size(-1))  # (B, T)
        outside = padding_mask[:, None, :, None] | padding_mask[:, None, None, :]  # (B,1,T,T)
        x = pair
        for index, conv in enumerate(self.convs):
            x = conv(torch.where(outside, 0.0, x))  # NaN or garbage in padding reads as 0
            if index < len(self.convs) - 1:
                x = self.activation(x)
        return torch.where(outside, 0.0, x)  # (B, H, T, T)
