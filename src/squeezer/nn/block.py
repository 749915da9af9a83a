"""One encoder block in either layout (paper Section 3.2, Figure 3).

- `ConformerBlock`: Macaron FF/2 -> MHA -> Conv -> FF/2, a pre-LN on every module input and a
  final LN after the block (Gulati et al. 2020).
- `SqueezeformerBlock`: MHA -> FF -> Conv -> FF with full-step residuals and a post-LN after
  every module. Each module's input goes through either a pre-LN ("pre_post": the
  back-to-back post-LN/pre-LN of the paper's intermediate step) or a learnable ScaleBias
  ("post_scale_bias": Squeezeformer's simplified layer norm, Section 3.3.2).

Each block takes `(x (B, T, D), pos_emb (2T-1, D), padding_mask (B, T))` and returns (B, T, D).
"""

from __future__ import annotations

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.attention import RelPositionMultiHeadAttention
from squeezer.nn.convolution import ConvModule
from squeezer.nn.dropout import Dropout
from squeezer.nn.feedforward import FeedForward, ScaleBias

__all__ = ["ConformerBlock", "SqueezeformerBlock", "build_block"]


class ConformerBlock(nn.Module):
    """x + FF/2 -> x + MHA -> x + Conv -> x + FF/2 -> LN, each module pre-normalised."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        D = config.d_model
        self.pre_ff1, self.ff1 = nn.LayerNorm(D), FeedForward(config)
        self.pre_attn, self.attn = nn.LayerNorm(D), RelPositionMultiHeadAttention(config)
        self.pre_conv, self.conv = nn.LayerNorm(D), ConvModule(config)
        self.pre_ff2, self.ff2 = nn.LayerNorm(D), FeedForward(config)
        self.post_block = nn.LayerNorm(D)
        self.dropout = Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, pos_emb: torch.Tensor, padding_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        # Macaron half-step residuals; add's alpha scales inside the add, no extra pass.
        x = torch.add(x, self.dropout(self.ff1(self.pre_ff1(x))), alpha=0.5)
        x = x + self.dropout(self.attn(self.pre_attn(x), pos_emb, padding_mask))
        x = x + self.dropout(self.conv(self.pre_conv(x), padding_mask))
        x = torch.add(x, self.dropout(self.ff2(self.pre_ff2(x))), alpha=0.5)
        return self.post_block(x)


def _module_input(config: EncoderConfig) -> nn.Module:
    if config.norm_scheme == "pre_post":
        return nn.LayerNorm(config.d_model)
    if config.norm_scheme == "post_scale_bias":
        return ScaleBias(config.d_model)
    raise ValueError(f"norm_scheme={config.norm_scheme!r} is not one of pre_post, post_scale_bias")


class SqueezeformerBlock(nn.Module):
    """LN(x + MHA) -> LN(x + FF) -> LN(x + Conv) -> LN(x + FF); inputs via LN or ScaleBias."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        D = config.d_model
        self.pre_attn, self.attn = _module_input(config), RelPositionMultiHeadAttention(config)
        self.post_attn = nn.LayerNorm(D)
        self.pre_ff1, self.ff1, self.post_ff1 = (
            _module_input(config),
            FeedForward(config),
            nn.LayerNorm(D),
        )
        self.pre_conv, self.conv = _module_input(config), ConvModule(config)
        self.post_conv = nn.LayerNorm(D)
        self.pre_ff2, self.ff2, self.post_ff2 = (
            _module_input(config),
            FeedForward(config),
            nn.LayerNorm(D),
        )
        self.dropout = Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, pos_emb: torch.Tensor, padding_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        x = self.post_attn(x + self.dropout(self.attn(self.pre_attn(x), pos_emb, padding_mask)))
        x = self.post_ff1(x + self.dropout(self.ff1(self.pre_ff1(x))))
        x = self.post_conv(x + self.dropout(self.conv(self.pre_conv(x), padding_mask)))
        return self.post_ff2(x + self.dropout(self.ff2(self.pre_ff2(x))))


def build_block(config: EncoderConfig) -> nn.Module:
    """The block class the config's `block_layout` names."""
    if config.block_layout == "conformer":
        return ConformerBlock(config)
    if config.block_layout == "squeezeformer":
        return SqueezeformerBlock(config)
    raise ValueError(f"block_layout={config.block_layout!r} is not one of conformer, squeezeformer")
