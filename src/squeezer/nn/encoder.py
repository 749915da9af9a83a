"""SequenceEncoder: the Conformer-to-Squeezeformer family behind one generic API.

    features (B, T, F), lengths (B,) -> EncoderOutput(features (B, T', D), lengths (B,))

The encoder knows nothing about audio: with `subsampling="none"` it encodes any sequence of
F-dimensional vectors (landmarks, embeddings, sensor readings) at its own frame rate, with an
optional bias on every block's attention logits (`attn_bias`), a choice of positional scheme
(`EncoderConfig.position`) and stochastic depth (`EncoderConfig.drop_path`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.attention import attention_dtype, relative_positional_encoding
from squeezer.nn.attention_bias import (
    AttnBias,
    bias_for_block,
    check_bias,
    combine_static_bias,
    pool_to_half_rate,
)
from squeezer.nn.block import build_block
from squeezer.nn.drop_path import drop_path_rates
from squeezer.nn.dropout import Dropout
from squeezer.nn.masks import lengths_to_padding_mask, zero_padded_frames
from squeezer.nn.positions import alibi_bias, rotary_angles, sinusoidal_positions
from squeezer.nn.subsampling import Subsampling
from squeezer.nn.unet import TimeRecovery, TimeReduction

__all__ = ["EncoderOutput", "EncoderOutputWithHidden", "SequenceEncoder"]


class EncoderOutput(NamedTuple):
    """features (B, T', D), zero at padded frames; lengths (B,) int64."""

    features: torch.Tensor
    lengths: torch.Tensor


class EncoderOutputWithHidden(NamedTuple):
    """EncoderOutput plus each block's output (B, T_i, D), zero at padding, and its lengths
    (B,): half-rate blocks of the Temporal U-Net have ceil(T' / 2) frames."""

    features: torch.Tensor
    lengths: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...]
    hidden_lengths: tuple[torch.Tensor, ...]


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
        rates = drop_path_rates(config.drop_path, config.num_layers)
        self.blocks = nn.ModuleList([build_block(config, rate) for rate in rates])
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

    def forward(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        attn_bias: AttnBias | None = None,
        return_hidden_states: bool = False,
    ) -> EncoderOutput | EncoderOutputWithHidden:
        """x (B, T, F) float, lengths (B,) int -> EncoderOutput((B, T', D), (B,)).

        attn_bias: added to the attention logits of every block (see `attention_bias.py`):
            one tensor broadcastable to (B, H, T', T') over the frames the blocks see, a
            sequence of one per block, or a callable `block_index -> tensor`. The U-Net's
            half-rate blocks take it pooled 2 x 2 over real frames.
        return_hidden_states: also return each block's output (zero at padding) and lengths.
        """
        self._check_inputs(x, lengths)
        lengths = lengths.long()
        x, lengths = self.subsampling(x, lengths)  # (B, T', D)
        x = x * self.xscale
        if self.config.position == "absolute":
            x = x + sinusoidal_positions(x.size(1), x.size(2), x.device, x.dtype)
        x = self.input_dropout(x)
        if self.input_norm is not None:
            x = self.input_norm(x)
        rate = self._frame_rate(x, lengths)
        biases = _StaticBiases(attn_bias, attention_dtype(x), self.config, rate)
        hidden_states, hidden_lengths = [], []
        skip = None
        for index, block in enumerate(self.blocks):
            if self.time_reduction is not None and index == self.config.time_reduce_idx:
                skip = (x, rate)
                x, lengths = self.time_reduction(x, rate.lengths, rate.padding_mask)
                rate = self._frame_rate(x, lengths, half=True)  # (B, T'/2, D) from here
            if self.time_recovery is not None and index == self.config.time_recover_idx:
                x_skip, rate = skip
                x = self.time_recovery(x, x_skip)  # (B, T', D)
            static_bias = biases.for_block(index, rate)
            x = block(x, rate.pos_emb, rate.padding_mask, static_bias=static_bias)
            if return_hidden_states:
                hidden_states.append(zero_padded_frames(x, rate.padding_mask))
                hidden_lengths.append(rate.lengths)
        features = zero_padded_frames(x, rate.padding_mask)
        if return_hidden_states:
            return EncoderOutputWithHidden(
                features, rate.lengths, tuple(hidden_states), tuple(hidden_lengths)
            )
        return EncoderOutput(features, rate.lengths)

    def _frame_rate(self, x: torch.Tensor, lengths: torch.Tensor, half: bool = False) -> _FrameRate:
        """Masks and positions for the frames of x (B, T, D)."""
        T, D, position = x.size(1), x.size(2), self.config.position
        pos_emb = alibi = None
        if position == "relative":
            pos_emb = relative_positional_encoding(T, D, x.device, x.dtype)  # (2T - 1, D)
        elif position == "rope":
            pos_emb = rotary_angles(T, self.config.head_dim, x.device, x.dtype)  # (2, T, dh/2)
        elif position == "alibi":
            alibi = alibi_bias(T, self.config.num_heads, x.device, attention_dtype(x))
        return _FrameRate(lengths, lengths_to_padding_mask(lengths, T), pos_emb, alibi, half)


class _FrameRate(NamedTuple):
    """What the blocks at one frame rate share: lengths (B,), padding_mask (B, T), the
    scheme's positions, ALiBi's (1, H, T, T) bias, and whether this is the U-Net's half rate."""

    lengths: torch.Tensor
    padding_mask: torch.Tensor
    pos_emb: torch.Tensor | None
    alibi: torch.Tensor | None
    half: bool


class _StaticBiases:
    """Each block's static bias (padding, ALiBi, the user's bias), built once per distinct
    tensor and frame rate within one forward: a shared bias costs one pass, not one per block.
    """

    def __init__(
        self,
        attn_bias: AttnBias | None,
        dtype: torch.dtype,
        config: EncoderConfig,
        full_rate: _FrameRate,
    ) -> None:
        self.attn_bias = attn_bias
        self.dtype = dtype
        self.config = config
        self.full_rate = full_rate
        # id(tensor), half -> (tensor, bias); holding the tensor keeps its id from being reused
        self.cache: dict[tuple[int, bool], tuple[torch.Tensor | None, torch.Tensor]] = {}

    def for_block(self, index: int, rate: _FrameRate) -> torch.Tensor | None:
        user = bias_for_block(self.attn_bias, index, self.config.num_layers)
        if user is None and rate.alibi is None:
            return None  # the attention adds -inf at padded keys itself
        key = (id(user), rate.half)
        if key not in self.cache:
            self.cache[key] = (user, self._build(user, index, rate))
        return self.cache[key][1]

    def _build(self, user: object, index: int, rate: _FrameRate) -> torch.Tensor:
        if user is not None:
            mask = self.full_rate.padding_mask
            user = check_bias(user, mask.size(0), self.config.num_heads, mask.size(1), index)
            if rate.half:
                user = pool_to_half_rate(user, mask)  # (B, h, T/2, T/2)
        return combine_static_bias(rate.padding_mask, self.dtype, rate.alibi, user)
