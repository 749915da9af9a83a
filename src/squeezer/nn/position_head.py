"""A per-position head: optional bidirectional GRU, then a linear map to K values per frame.

The Ribonanza solutions put a GRU over the encoder's output before predicting two reactivities
per base. A bidirectional GRU over a padded batch would start its backward pass in the padding;
here the backward direction reads each sequence reversed within its own length (a gather, no
packed sequences), so each sequence gives the same outputs alone as inside a padded batch and
the head exports to ONNX as plain GRU and Gather nodes.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezer.nn.masks import lengths_to_padding_mask

__all__ = ["PositionHead", "reverse_padded"]


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x (B, T, D) within its length; padded frames stay in place."""
    T = x.size(1)
    frames = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    last = (lengths - 1).unsqueeze(1)  # (B, 1)
    index = torch.where(frames <= last, last - frames, frames)  # (B, T)
    rows = torch.arange(x.size(0), device=x.device).unsqueeze(1)  # (B, 1)
    return x[rows, index]  # (B, T, D); an index, not gather + expand, exports with any batch


class PositionHead(nn.Module):
    """(B, T, D), lengths (B,) -> (B, T, K): values per frame, zero at padding.

    Args:
        d_model: D, the encoder's width.
        num_outputs: K, values per position.
        gru_hidden: hidden size of each direction of a bidirectional GRU run first; None
            for none (a plain linear map).
        dropout: dropout before the output linear.
    """

    def __init__(
        self, d_model: int, num_outputs: int, gru_hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if num_outputs < 1:
            raise ValueError(f"num_outputs={num_outputs} must be positive")
        if gru_hidden is not None and gru_hidden < 1:
            raise ValueError(f"gru_hidden={gru_hidden} must be positive or None")
        self.gru_forward = self.gru_backward = None
        width = d_model
        if gru_hidden is not None:
            self.gru_forward = nn.GRU(d_model, gru_hidden, batch_first=True)
            self.gru_backward = nn.GRU(d_model, gru_hidden, batch_first=True)
            width = 2 * gru_hidden
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(width, num_outputs)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, D), lengths (B,) -> (B, T, K), zero at padded frames."""
        keep = ~lengths_to_padding_mask(lengths, features.size(1))  # (B, T)
        x = features
        if self.gru_forward is not None:
            # Forward in time the padding comes after every real frame, so it cannot reach them.
            ahead, _ = self.gru_forward(x)  # (B, T, h)
            behind, _ = self.gru_backward(reverse_padded(x, lengths))
            x = torch.cat([ahead, reverse_padded(behind, lengths)], dim=-1)  # (B, T, 2h)
        return self.linear(self.dropout(x)) * keep.unsqueeze(-1)
