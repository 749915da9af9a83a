"""One encoder block in either layout (paper Section 3.2, Figure 3).

- `ConformerBlock`: Macaron FF/2 -> MHA -> Conv -> FF/2, a pre-LN on every module input and a
  final LN after the block (Gulati et al. 2020).
- `SqueezeformerBlock`: MHA -> FF -> Conv -> FF with full-step residuals and a post-LN after
  every module. Each module's input goes through either a pre-LN ("pre_post": the
  back-to-back post-LN/pre-LN of the paper's intermediate step) or a learnable ScaleBias
  ("post_scale_bias": Squeezeformer's simplified layer norm, Section 3.3.2).

Each block takes `(x (B, T, D), pos_emb, padding_mask (B, T), static_bias)` and returns
(B, T, D); `pos_emb` and `static_bias` are what the attention takes (see `attention.py`).
With a drop path rate, each residual branch is dropped per sample in training (stochastic
depth); at rate 0 the branch is added as before.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.attention import MultiHeadSelfAttention
from squeezer.nn.convolution import ConvModule
from squeezer.nn.drop_path import DropPath
from squeezer.nn.dropout import Dropout
from squeezer.nn.feedforward import FeedForward, ScaleBias

__all__ = ["ConformerBlock", "SqueezeformerBlock", "build_block"]


class ConformerBlock(nn.Module):
    """x + FF/2 -> x + MHA -> x + Conv -> x + FF/2 -> LN, each module pre-normalised."""

    def __init__(self, config: EncoderConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        D = config.d_model
        self.pre_ff1, self.ff1 = nn.LayerNorm(D), FeedForward(config)
        self.pre_attn, self.attn = nn.LayerNorm(D), MultiHeadSelfAttention(config)
        self.pre_conv, self.conv = nn.LayerNorm(D), ConvModule(config)
        self.pre_ff2, self.ff2 = nn.LayerNorm(D), FeedForward(config)
        self.post_block = nn.LayerNorm(D)
        self.dropout = Dropout(config.dropout)
        self.drop_path = DropPath(drop_path)

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.dropout(x))

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: torch.Tensor | None,
        padding_mask: torch.Tensor,
        static_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        # Macaron half-step residuals; add's alpha scales inside the add, no extra pass.
        x = torch.add(x, self._branch(self.ff1(self.pre_ff1(x))), alpha=0.5)
        attended = self.attn(self.pre_attn(x), pos_emb, padding_mask, static_bias=static_bias)
        x = x + self._branch(attended)
        x = x + self._branch(self.conv(self.pre_conv(x), padding_mask))
        x = torch.add(x, self._branch(self.ff2(self.pre_ff2(x))), alpha=0.5)
        return self.post_block(x)


def _module_input(config: EncoderConfig) -> nn.Module:
    if config.norm_scheme == "pre_post":
        return nn.LayerNorm(config.d_model)
    if config.norm_scheme == "post_scale_bias":
        return ScaleBias(config.d_model)
    raise ValueError(f"norm_scheme={config.norm_scheme!r} is not one of pre_post, post_scale_bias")


class SqueezeformerBlock(nn.Module):
    """LN(x + MHA) -> LN(x + FF) -> LN(x + Conv) -> LN(x + FF); inputs via LN or ScaleBias."""

    def __init__(self, config: EncoderConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        D = config.d_model
        self.pre_attn, self.attn = _module_input(config), MultiHeadSelfAttention(config)
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
        self.drop_path = DropPath(drop_path)

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.dropout(x))

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: torch.Tensor | None,
        padding_mask: torch.Tensor,
        static_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        attended = self.attn(self.pre_attn(x), pos_emb, padding_mask, static_bias=static_bias)
        x = self.post_attn(x + self._branch(attended))
        x = self.post_ff1(x + self._branch(self.ff1(self.pre_ff1(x))))
        x = self.post_conv(x + self._branch(self.conv(self.pre_conv(x), padding_mask)))
        return self.post_ff2(x + self._branch(self.ff2(self.pre_ff2(x))))


def build_block(config: EncoderConfig, drop_path: float = 0.0) -> nn.Module:
    """The block class the config's `block_layout` names, its branches dropped at `drop_path`."""
    if config.block_layout == "conformer":
        return ConformerBlock(config, drop_path)
    if config.block_layout == "squeezeformer":
        return SqueezeformerBlock(config, drop_path)
    raise ValueError(f"block_layout={config.block_layout!r} is not one of conformer, squeezeformer")
