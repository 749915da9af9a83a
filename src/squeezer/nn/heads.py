"""Heads on top of a `SequenceEncoder`: CTC for speech, pooled classification, frame regression.

The pieces (pooling, the per-position head, the losses) are in `pooling.py`,
`position_head.py` and `losses.py`, for models that put the encoder inside their own.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.attention_bias import AttnBias
from squeezer.nn.dropout import Dropout
from squeezer.nn.encoder import SequenceEncoder
from squeezer.nn.pooling import GeMPool, MeanPool, masked_mean
from squeezer.nn.position_head import PositionHead

PoolingKind = Literal["mean", "gem"]

__all__ = [
    "CtcHead",
    "CtcOutput",
    "FrameRegressor",
    "PooledClassifier",
    "masked_mean",
]

BLANK = 0  # the CTC blank is index 0 everywhere in squeezer


class CtcOutput(NamedTuple):
    """log_probs (B, T', V + 1) with the blank at index 0; lengths (B,)."""

    log_probs: torch.Tensor
    lengths: torch.Tensor


class CtcHead(nn.Module):
    """Linear D -> V + 1 (blank first) and a log-softmax over the vocabulary."""

    def __init__(self, d_model: int, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size={vocab_size} must be positive")
        self.vocab_size = vocab_size
        self.linear = nn.Linear(d_model, vocab_size + 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> log-probabilities (B, T, V + 1), computed in float32."""
        return self.linear(features).float().log_softmax(dim=-1)


class PooledClassifier(nn.Module):
    """Encoder -> pooling over real frames (mean or GeM) -> dropout -> linear: one label per
    sequence."""

    def __init__(
        self, config: EncoderConfig, num_classes: int, pooling: PoolingKind = "mean"
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "gem"):
            raise ValueError(f"pooling={pooling!r} is not one of mean, gem")
        self.encoder = SequenceEncoder(config)
        self.pool = MeanPool() if pooling == "mean" else GeMPool()
        self.dropout = Dropout(config.dropout)
        self.linear = nn.Linear(config.d_model, num_classes)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, attn_bias: AttnBias | None = None
    ) -> torch.Tensor:
        """x (B, T, F), lengths (B,) -> logits (B, num_classes)."""
        features, out_lengths = self.encoder(x, lengths, attn_bias=attn_bias)
        return self.linear(self.dropout(self.pool(features, out_lengths)))


class FrameRegressor(nn.Module):
    """Encoder -> `PositionHead` (optionally a bidirectional GRU first): (B, T, F) ->
    (B, T', num_outputs), zero at padding."""

    def __init__(
        self, config: EncoderConfig, num_outputs: int, gru_hidden: int | None = None
    ) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(config)
        self.head = PositionHead(config.d_model, num_outputs, gru_hidden=gru_hidden)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, attn_bias: AttnBias | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, F), lengths (B,) -> (predictions (B, T', num_outputs), lengths (B,))."""
        features, out_lengths = self.encoder(x, lengths, attn_bias=attn_bias)
        return self.head(features, out_lengths), out_lengths
