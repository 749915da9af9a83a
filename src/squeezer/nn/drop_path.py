"""Stochastic depth (Huang et al. 2016): drop a residual branch for whole samples at a time.

In training each sample of the batch keeps the branch with probability 1 - p, scaled by
1 / (1 - p) so that its expectation is unchanged; in eval the branch is always kept. The rate
rises linearly over the blocks (the first block never drops, the last drops at the full rate),
as in timm and the Kaggle Squeezeformers that use it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DropPath", "drop_path_rates"]


def drop_path_rates(rate: float, num_layers: int) -> list[float]:
    """Per-block rates rising linearly from 0 (block 0) to `rate` (the last block)."""
    if num_layers == 1:
        return [rate]
    return [rate * index / (num_layers - 1) for index in range(num_layers)]


class DropPath(nn.Module):
    """x (B, ...) -> x, or 0, per sample: keep with probability 1 - p, scaled by 1 / (1 - p).

    Identity in eval mode and at p = 0.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path rate {p!r} must be in [0, 1)")
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.size(0),) + (1,) * (x.dim() - 1)  # (B, 1, ..., 1): one draw per sample
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)
