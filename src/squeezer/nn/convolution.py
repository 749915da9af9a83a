"""The convolution module: pointwise -> GLU | Swish -> depthwise -> BatchNorm -> Swish -> pointwise.

Conformer (Gulati et al. 2020) gates the first pointwise conv's 2D channels down to D with a
GLU; Squeezeformer's unified activation (paper Section 3.3.1) applies Swish to all 2D channels
instead, so the depthwise conv and the second pointwise conv run on 2D channels (this is what
the official code and NeMo build, and what the paper's parameter counts include).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.batchnorm import MaskedBatchNorm
from squeezer.nn.masks import zero_padded_frames

__all__ = ["ConvModule"]


class ConvModule(nn.Module):
    """Depthwise convolution over time with a gated or Swish-activated pointwise expansion."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        D = config.d_model
        self.use_glu = config.conv_activation == "glu"
        channels = D if self.use_glu else 2 * D
        # Pointwise convs are Linear layers on (B, T, C): the same weights, no transposes.
        self.pointwise1 = nn.Linear(D, 2 * D)
        # Time is the width of a (B, C, 1, T) view of the (B, T, C) activations: that view is
        # channels-last memory without a copy, so oneDNN's channels-last depthwise kernel runs
        # (several times faster on CPU than Conv1d) and writes (B, T, C) memory back, and
        # BatchNorm, Swish and the second pointwise conv need no transpose either.
        self.depthwise = nn.Conv2d(
            channels,
            channels,
            (1, config.conv_kernel_size),
            padding=(0, (config.conv_kernel_size - 1) // 2),
            groups=channels,
        )
        self.batch_norm = MaskedBatchNorm(channels)
        self.pointwise2 = nn.Linear(channels, D)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), padding_mask (B, T) -> (B, T, D)."""
        x = self.pointwise1(x)  # (B, T, 2D)
        x = F.glu(x, dim=-1) if self.use_glu else F.silu(x)  # (B, T, C)
        # The biased pointwise conv refilled the padding; zero it before mixing time.
        x = zero_padded_frames(x, padding_mask)
        x = self.depthwise(x.transpose(1, 2).unsqueeze(2))  # (B, C, 1, T), channels-last
        x = F.silu(self.batch_norm(x, padding_mask))
        return self.pointwise2(x.squeeze(2).transpose(1, 2))  # (B, T, D)
