"""AsrModel: a `SequenceEncoder` with a CTC head, from features to per-frame log-probabilities."""

from __future__ import annotations

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.encoder import SequenceEncoder
from squeezer.nn.heads import CtcHead, CtcOutput

__all__ = ["AsrModel"]


class AsrModel(nn.Module):
    """Encoder + CTC head (blank at index 0).

    Args:
        config: the encoder's configuration.
        vocab_size: number of tokens, not counting the blank (the paper uses 128).
    """

    def __init__(self, config: EncoderConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.encoder = SequenceEncoder(config)
        self.ctc_head = CtcHead(config.d_model, vocab_size)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder.output_lengths(lengths)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> CtcOutput:
        """features (B, T, F), lengths (B,) -> CtcOutput(log_probs (B, T', V + 1), lengths)."""
        encoded, out_lengths = self.encoder(features, lengths)
        return CtcOutput(self.ctc_head(encoded), out_lengths)
