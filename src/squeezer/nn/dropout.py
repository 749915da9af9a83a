"""Dropout whose mask costs a quarter of the random numbers on CPU.

`torch.bernoulli_` draws one 32-bit random number per element and dominated the CPU training
step (22 % of an XS forward+backward, docs/benchmarks.md). Here each 64-bit random word gives
four 16-bit lanes, each compared against a threshold: the same inverted dropout with the drop
probability rounded to a multiple of 1/65536 (0.1 becomes 0.100006). Other devices, whose
Bernoulli sampling is fast, use PyTorch's own kernel.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Dropout"]

_LANES = 4  # int16 lanes per int64 random word


class Dropout(nn.Dropout):
    """`nn.Dropout` (identity in eval mode) with a cheaper mask on CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        words = torch.empty(-(-x.numel() // _LANES), dtype=torch.int64, device=x.device)
        # The full int64 range (minus its largest value): all 16-bit lanes uniform.
        words.random_(-(2**63), 2**63 - 1)
        lanes = words.view(torch.int16)[: x.numel()].view(x.shape)
        threshold = round(self.p * 65536) - 32768  # P(lane >= threshold) = 1 - p
        keep = lanes >= threshold
        return (x * keep).mul_(1.0 / (1.0 - self.p))
