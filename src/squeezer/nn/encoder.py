"""SequenceEncoder: the Conformer-to-Squeezeformer family behind one generic API.

    features (B, T, F), lengths (B,) -> EncoderOutput(features (B, T', D), lengths (B,))

The encoder knows nothing about audio: with `subsampling="none"` it encodes any sequence of
F-dimensional vectors (landmarks, embeddings, sensor readings) at its own frame rate.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.attention import relative_positional_encoding
from squeezer.nn.block import build_block
from squeezer.nn.dropout import Dropout
from squeezer.nn.masks import lengths_to_padding_mask, zero_padded_frames
from squeezer.nn.subsampling import Subsampling
from squeezer.nn.unet import TimeRecovery, TimeReduction

__all__ = ["EncoderOutput", "SequenceEncoder"]


class EncoderOutput(NamedTuple):
    """features (B, T', D), zero at padded frames; lengths (B,) int64."""

    features: torch.Tensor
    lengths: torch.Tensor


class SequenceEncoder(nn.Module):
    """Subsampling -> (input LN) -> blocks, with the Temporal U-Net around the middle blocks.

    Args:
        config: an `EncoderConfig`; `EncoderConfig.preset(name)` gives the paper's models.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.subsampling = Subsampling(config)
        self.xscale = math.sqrt(config.d_model) if config.xscaling else 1.0
        self.input_dropout = Dropout(config.dropout)
        # Post-LN blocks never normalise their first module's input: an LN in front does.
        self.input_norm = (
            nn.LayerNorm(config.d_model) if config.block_layout == "squeezeformer" else None
        )
        self.blocks = nn.ModuleList([build_block(config) for _ in range(config.num_layers)])
        self.time_reduction = TimeReduction(config) if config.uses_unet else None
        self.time_recovery = TimeRecovery(config) if config.time_recover_idx is not None else None

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for `lengths` input frames, computed without running the model."""
        lengths = self.subsampling.output_lengths(lengths)
        if self.time_reduction is not None and self.time_recovery is None:
            lengths = self.time_reduction.output_lengths(lengths)
        return lengths

    def _check_inputs(self, x: torch.Tensor, lengths: torch.Tensor) -> None:
        if x.dim() != 3 or x.size(-1) != self.config.input_dim:
            raise ValueError(
                f"expected input of shape (B, T, {self.config.input_dim}), got {tuple(x.shape)}"
            )
        if lengths.shape != (x.size(0),) or lengths.dtype.is_floating_point:
            raise ValueError(
                f"expected integer lengths of shape ({x.size(0)},), "
                f"got {lengths.dtype} of shape {tuple(lengths.shape)}"
            )
        if torch.compiler.is_compiling():
            return  # value checks need a host sync; eager calls have already run them
        shortest, longest = int(lengths.min()), int(lengths.max())
        if shortest < 1:
            raise ValueError(f"every sequence needs at least 1 frame, got a length of {shortest}")
        if longest > x.size(1):
            raise ValueError(f"a length of {longest} exceeds the {x.size(1)} input frames")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """x (B, T, F) float, lengths (B,) int -> EncoderOutput((B, T', D), (B,))."""
        self._check_inputs(x, lengths)
        lengths = lengths.long()
        x, lengths = self.subsampling(x, lengths)  # (B, T', D)
        x = self.input_dropout(x * self.xscale)
        if self.input_norm is not None:
            x = self.input_norm(x)
        padding_mask = lengths_to_padding_mask(lengths, x.size(1))  # (B, T')
        pos_emb = relative_positional_encoding(x.size(1), x.size(2), x.device, x.dtype)
        skip = None
        for index, block in enumerate(self.blocks):
            if self.time_reduction is not None and index == self.config.time_reduce_idx:
                skip = (x, lengths, padding_mask, pos_emb)
                x, lengths = self.time_reduction(x, lengths, padding_mask)  # (B, T'/2, D)
                padding_mask = lengths_to_padding_mask(lengths, x.size(1))
                pos_emb = relative_positional_encoding(x.size(1), x.size(2), x.device, x.dtype)
            if self.time_recovery is not None and index == self.config.time_recover_idx:
                x_skip, lengths, padding_mask, pos_emb = skip
                x = self.time_recovery(x, x_skip)  # (B, T', D)
            x = block(x, pos_emb, padding_mask)
        return EncoderOutput(zero_padded_frames(x, padding_mask), lengths)
