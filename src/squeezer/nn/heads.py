"""Heads on top of a `SequenceEncoder`: CTC for speech, pooled classification, frame regression."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.dropout import Dropout
from squeezer.nn.encoder import SequenceEncoder
from squeezer.nn.masks import lengths_to_padding_mask

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


def masked_mean(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the real frames of each sequence: (B, T, D), (B,) -> (B, D).

    Accumulated in float32 at least (bf16 under autocast would sum T frames in 8 bits of
    mantissa); returned in that accumulation dtype.
    """
    features = features.to(torch.promote_types(features.dtype, torch.float32))
    keep = ~lengths_to_padding_mask(lengths, features.size(1))  # (B, T)
    total = (features * keep.unsqueeze(-1)).sum(dim=1)  # (B, D)
    return total / lengths.clamp(min=1).unsqueeze(-1).to(features.dtype)


class PooledClassifier(nn.Module):
    """Encoder -> masked mean over time -> dropout -> linear: one label per sequence."""

    def __init__(self, config: EncoderConfig, num_classes: int) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(config)
        self.dropout = Dropout(config.dropout)
        self.linear = nn.Linear(config.d_model, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, F), lengths (B,) -> logits (B, num_classes)."""
        features, out_lengths = self.encoder(x, lengths)
        return self.linear(self.dropout(masked_mean(features, out_lengths)))


class FrameRegressor(nn.Module):
    """Encoder -> linear per output frame: (B, T, F) -> (B, T', num_outputs), zero at padding."""

    def __init__(self, config: EncoderConfig, num_outputs: int) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(config)
        self.linear = nn.Linear(config.d_model, num_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, F), lengths (B,) -> (predictions (B, T', num_outputs), lengths (B,))."""
        features, out_lengths = self.encoder(x, lengths)
        keep = ~lengths_to_padding_mask(out_lengths, features.size(1))
        return self.linear(features) * keep.unsqueeze(-1), out_lengths
