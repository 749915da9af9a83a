"""The subsampling front: features at 10 ms -> model frames at 40 ms (paper Section 3.3.3).

Two kinds, both of stride-2 3x3 Conv2d stages over (time, frequency) with padding 1, ReLU
after each stage (as in the official code and NeMo), then a linear map to d_model:

- "conv2d": every stage is a full Conv2d (Conformer).
- "depthwise": the first stage is a full Conv2d from the single input channel; later stages
  are depthwise 3x3 stride 2 + pointwise 1x1 (Squeezeformer, NeMo's "dw_striding").

"none" is a plain linear projection for inputs that need no subsampling (landmarks, tokens).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.masks import conv_output_lengths, lengths_to_padding_mask

__all__ = ["Subsampling"]

KERNEL_SIZE = 3
STRIDE = 2
PADDING = 1


def _stage(in_channels: int, out_channels: int, depthwise: bool) -> nn.Sequential:
    """One stride-2 stage, without its ReLU (applied in place after masking)."""
    if not depthwise:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, STRIDE, PADDING))
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, KERNEL_SIZE, STRIDE, PADDING, groups=in_channels),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
    )


def _conv_channels_last(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    # oneDNN runs these convs 3-10x faster on CPU in channels-last layout than in NCHW
    # (docs/benchmarks.md); a channels-last weight selects that path. Converting the small
    # weight per call keeps the parameters themselves plain and contiguous.
    weight = conv.weight.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, groups=conv.groups)


class Subsampling(nn.Module):
    """(B, T, F) features -> (B, T', D) frames, T' = ceil(T / factor) (for factor 4).

    Padded frames are zeroed before every stage so that a sequence's output does not depend
    on how much padding its batch carries.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.kind = config.subsampling
        if self.kind == "none":
            self.num_stages = 0
            self.stages = nn.ModuleList()
            self.linear = nn.Linear(config.input_dim, config.d_model)
            return
        self.num_stages = int(math.log2(config.subsampling_factor))
        channels = config.conv_channels
        depthwise = self.kind == "depthwise"
        self.stages = nn.ModuleList(
            [_stage(1, channels, depthwise=False)]
            + [_stage(channels, channels, depthwise) for _ in range(self.num_stages - 1)]
        )
        freq = config.input_dim
        for _ in range(self.num_stages):
            freq = (freq + 2 * PADDING - KERNEL_SIZE) // STRIDE + 1
        self.linear = nn.Linear(channels * freq, config.d_model)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for `lengths` input frames: one conv length formula per stage."""
        for _ in range(self.num_stages):
            lengths = conv_output_lengths(lengths, KERNEL_SIZE, STRIDE, PADDING)
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, F), lengths (B,) -> (y (B, T', D), lengths (B,))."""
        if self.num_stages == 0:
            return self.linear(x), lengths
        mask = lengths_to_padding_mask(lengths, x.size(1))  # (B, T)
        x = x.masked_fill(mask.unsqueeze(-1), 0.0).unsqueeze(1)  # (B, 1, T, F)
        for stage in self.stages:
            for conv in stage:
                x = _conv_channels_last(conv, x)  # (B, C, ceil(T/2), ceil(F/2)) after a stride
            lengths = conv_output_lengths(lengths, KERNEL_SIZE, STRIDE, PADDING)
            # Zero padded frames before the next stage mixes time; ReLU keeps them zero.
            mask = lengths_to_padding_mask(lengths, x.size(2))
            x = x.masked_fill_(mask[:, None, :, None], 0.0).relu_()
        B, C, T, Fq = x.size()
        x = x.transpose(1, 2).reshape(B, T, C * Fq)  # (B, T', C * F'), channel-major as NeMo
        return self.linear(x), lengths
