"""Pooling over the real frames of each sequence: masked mean and GeM.

Padding never enters a pooled vector: a sequence pools to the same vector alone as inside a
padded batch. Both accumulate in float32 at least (bf16 under autocast would sum T frames in
8 bits of mantissa) and return that accumulation dtype.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezer.nn.masks import lengths_to_padding_mask

__all__ = ["GeMPool", "MeanPool", "masked_mean"]


def masked_mean(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the real frames of each sequence: (B, T, D), (B,) -> (B, D)."""
    features = features.to(torch.promote_types(features.dtype, torch.float32))
    keep = ~lengths_to_padding_mask(lengths, features.size(1))  # (B, T)
    # where, not a product with the mask: inf or NaN in padding would leave NaN (inf * 0)
    total = torch.where(keep.unsqueeze(-1), features, 0.0).sum(dim=1)  # (B, D)
    return total / lengths.clamp(min=1).unsqueeze(-1).to(features.dtype)


class MeanPool(nn.Module):
    """`masked_mean` as a module: (B, T, D), lengths (B,) -> (B, D)."""

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean(features, lengths)


class GeMPool(nn.Module):
    """Generalised mean (Radenovic et al. 2018): (mean_t max(x, eps)^p)^(1 / p) per channel.

    p = 1 is the mean and p -> inf the max; p is learned (from 3, as in the HMS solutions).
    Inputs below `eps` are clamped to it, as GeM is defined for non-negative features.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        if p <= 0 or eps <= 0:
            raise ValueError(f"GeMPool needs p > 0 and eps > 0, got p={p}, eps={eps}")
        self.eps = eps
        p_tensor = torch.tensor(float(p))
        if learnable:
            self.p = nn.Parameter(p_tensor)
        else:
            self.register_buffer("p", p_tensor)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, D), lengths (B,) -> (B, D)."""
        dtype = torch.promote_types(features.dtype, torch.float32)
        p = self.p.to(dtype)
        keep = ~lengths_to_padding_mask(lengths, features.size(1))  # (B, T)
        # padding set to eps first: a large value there would overflow x^p to inf
        features = torch.where(keep.unsqueeze(-1), features.to(dtype), self.eps)
        powered = features.clamp(min=self.eps).pow(p)  # (B, T, D)
        return masked_mean(powered, lengths).pow(1.0 / p)
