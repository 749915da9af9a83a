"""The user's attention bias: which tensor a block takes, its check, and the half-rate rule.

`SequenceEncoder(x, lengths, attn_bias=...)` adds a float bias to the attention logits of
every block, as the Ribonanza solutions add a bias computed from a base-pair matrix. It is one
tensor shared by all blocks, a sequence with one tensor per block, or a callable
`block_index -> tensor`; each tensor is broadcastable to (B, H, T, T) over the frames the
blocks see (after subsampling).

What padding holds is never read: entries at a padded query or key are replaced (-inf at
padded keys, as the padding mask has it), so NaN or garbage there changes nothing, and a
sequence gives the same output alone as inside a padded batch.

The Temporal U-Net's half-rate blocks see T' = ceil(T / 2) frames: there the bias is pooled,
each half-rate pair (i, j) taking the mean of the full-rate entries (2i, 2j), (2i, 2j + 1),
(2i + 1, 2j), (2i + 1, 2j + 1) that are real frames (the reduction's output frame i stands for
input frames 2i and 2i + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from squeezer.nn.attention import padding_key_bias

__all__ = ["AttnBias", "bias_for_block", "check_bias", "combine_static_bias", "pool_to_half_rate"]

AttnBias = torch.Tensor | Sequence[torch.Tensor] | Callable[[int], torch.Tensor]


def bias_for_block(attn_bias: AttnBias | None, index: int, num_layers: int) -> torch.Tensor | None:
    """The tensor block `index` adds to its logits (None when there is no bias)."""
    if attn_bias is None or isinstance(attn_bias, torch.Tensor):
        return attn_bias
    if callable(attn_bias):
        return attn_bias(index)
    if isinstance(attn_bias, Sequence):
        if len(attn_bias) != num_layers:
            raise ValueError(
                f"attn_bias has {len(attn_bias)} tensors; the encoder has {num_layers} blocks"
            )
        return attn_bias[index]
    raise TypeError(
        f"attn_bias must be a tensor, a sequence of tensors or a callable, "
        f"got {type(attn_bias).__name__}"
    )


def check_bias(bias: object, batch: int, heads: int, frames: int, index: int) -> torch.Tensor:
    """`bias` itself when it is a float tensor broadcastable to (B, H, T, T); else one
    ValueError naming the block and both shapes."""
    if not isinstance(bias, torch.Tensor) or not bias.dtype.is_floating_point:
        kind = bias.dtype if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise ValueError(f"attn_bias for block {index} must be a float tensor, got {kind}")
    expected = (batch, heads, frames, frames)
    fits = bias.dim() <= 4 and all(
        size in (1, want) for size, want in zip(bias.shape[::-1], expected[::-1], strict=False)
    )
    if not fits or bias.shape[-2:] != (frames, frames):
        raise ValueError(
            f"attn_bias for block {index} has shape {tuple(bias.shape)}, "
            f"not broadcastable to (B, H, T, T) = {expected} with its last two sizes T"
        )
    return bias


def pool_to_half_rate(bias: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """The mean over each 2 x 2 block of real full-rate pairs: (b, h, T, T) -> (B, h, T', T').

    padding_mask (B, T) is the full rate's. T' = ceil(T / 2); a half-rate pair with no real
    full-rate pair under it (padding) gets 0.
    """
    bias = bias.reshape((1,) * (4 - bias.dim()) + tuple(bias.shape))  # (b, h, T, T)
    T = bias.size(-1)
    real = ~padding_mask  # (B, T)
    pairs = (real[:, None, :, None] & real[:, None, None, :]).to(bias.dtype)  # (B, 1, T, T)
    masked = torch.where(pairs > 0, bias, 0.0)  # (B, h, T, T): nothing from padding
    T2 = (T + 1) // 2
    extra = 2 * T2 - T  # 1 for odd T; written without T % 2 so that export keeps T symbolic
    masked = F.pad(masked, (0, extra, 0, extra))  # (B, h, 2T', 2T')
    pairs = F.pad(pairs, (0, extra, 0, extra))
    B, h = masked.size(0), masked.size(1)
    sums = masked.view(B, h, T2, 2, T2, 2).sum(dim=(3, 5))  # (B, h, T', T')
    counts = pairs.view(B, 1, T2, 2, T2, 2).sum(dim=(3, 5))  # (B, 1, T', T')
    return sums / counts.clamp(min=1.0)


def combine_static_bias(
    padding_mask: torch.Tensor,
    dtype: torch.dtype,
    alibi: torch.Tensor | None = None,
    user: torch.Tensor | None = None,
) -> torch.Tensor:
    """Everything a block adds to its logits besides the relative position term, in `dtype`.

    padding_mask (B, T); alibi (1, H, T, T); user broadcastable to (B, H, T, T). Returns a
    tensor broadcastable to (B, H, T, T): -inf at padded keys, 0 elsewhere in padded query
    rows, alibi + user at real pairs. A user bias wider than `dtype` is cast and clamped to
    its finite range, so that nothing overflows to inf under fp16 autocast (-inf at padded
    keys plus +inf would be NaN).
    """
    if user is None:
        key_bias = padding_key_bias(padding_mask, dtype)  # (B, 1, 1, T)
        return key_bias if alibi is None else key_bias + alibi.to(dtype)
    static = user.to(dtype)
    if static.dtype != user.dtype:
        limit = torch.finfo(dtype).max
        static = static.clamp(-limit, limit)
    query_pad = padding_mask[:, None, :, None]  # (B, 1, T, 1)
    static = torch.where(query_pad, 0.0, static)  # (B, h, T, T): padded rows read nothing
    if alibi is not None:
        static = static + alibi.to(dtype)
    # where, not + padding_key_bias: NaN or +inf at a padded key must not survive
    return torch.where(padding_mask[:, None, None, :], float("-inf"), static)
