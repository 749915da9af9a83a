"""Dropout whose mask costs a quarter of the random numbers on CPU, and no bool arithmetic.

`torch.bernoulli_` draws one 32-bit random number per element and dominated the CPU training
step (22 % of an XS forward+backward, docs/benchmarks.md). Here each 64-bit random word gives
four 16-bit lanes, each compared against a threshold: the same inverted dropout with the drop
probability rounded to a multiple of 1/65536 (0.1 becomes 0.100006).

The mask is a float tensor of 0 and 1 / (1 - p), written by the comparison itself: multiplying
by a bool mask makes PyTorch cast the mask to float first, an extra pass and allocation that
cost as much as the multiply (6x a plain float multiply, (8, 250, 576) on one core). Backward
keeps only the 16-bit lanes (half the bytes of a float mask) and rebuilds the mask from them.

Other devices, whose Bernoulli sampling is fast, use PyTorch's own kernel.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Dropout"]

_LANES = 4  # int16 lanes per int64 random word


def _random_lanes(like: torch.Tensor) -> torch.Tensor:
    """Uniform int16 numbers shaped like `like`, four from each 64-bit random word."""
    words = torch.empty(-(-like.numel() // _LANES), dtype=torch.int64, device=like.device)
    # The full int64 range (minus its largest value): all 16-bit lanes uniform.
    words.random_(-(2**63), 2**63 - 1)
    return words.view(torch.int16)[: like.numel()].view(like.shape)


def _scaled_keep_mask(lanes: torch.Tensor, p: float, dtype: torch.dtype) -> torch.Tensor:
    """1 / (1 - p) where a lane is kept (P = 1 - p), 0 where it is dropped."""
    threshold = round(p * 65536) - 32768  # P(lane >= threshold) = 1 - p
    mask = torch.empty(lanes.shape, dtype=dtype, device=lanes.device)
    torch.ge(lanes, threshold, out=mask)  # 0 / 1, written straight into the float tensor
    return mask.mul_(1.0 / (1.0 - p))


class _LaneDropout(torch.autograd.Function):
    """y = x * mask; the gradient is g * mask, with the mask rebuilt from the saved lanes."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        lanes = _random_lanes(x)
        ctx.save_for_backward(lanes)
        ctx.p = p
        return _scaled_keep_mask(lanes, p, x.dtype).mul_(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (lanes,) = ctx.saved_tensors
        return _scaled_keep_mask(lanes, ctx.p, grad.dtype).mul_(grad), None


class Dropout(nn.Dropout):
    """`nn.Dropout` (identity in eval mode) with a cheaper mask on CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        return _LaneDropout.apply(x, self.p)
