"""The feed-forward module and ScaleBias, the learnable scaling that replaces pre-LN."""

from __future__ import annotations

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.dropout import Dropout

__all__ = ["FeedForward", "ScaleBias"]


class FeedForward(nn.Module):
    """Linear (D -> ff_expansion * D) -> Swish -> dropout -> Linear (back to D).

    Paper Section 3.3.1: Swish is the one activation of the model.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        hidden = config.ff_expansion * config.d_model
        self.linear1 = nn.Linear(config.d_model, hidden)
        self.activation = nn.SiLU()
        self.dropout = Dropout(config.dropout)
        self.linear2 = nn.Linear(hidden, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class ScaleBias(nn.Module):
    """y = x * scale + bias, per channel (paper Section 3.3.2, "adaptive scale").

    Replaces the pre-LN of a module whose input already comes out of a post-LN: the two
    back-to-back LNs are redundant, but removing the pre-LN outright diverges in training.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        return torch.addcmul(self.bias, x, self.scale)
