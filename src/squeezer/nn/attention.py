"""Multi-head self-attention on SDPA, with the paper's relative positions (Transformer-XL).

The score of query i for key j is

    ((q_i + u) . k_j + (q_i + v) . p_{i-j}) / sqrt(d_head)

with learnable per-head biases u, v and p_r a projected sinusoid of the relative distance r
(Dai et al. 2019, as used by Conformer and Squeezeformer). The content term goes through
`torch.nn.functional.scaled_dot_product_attention`; the position term and the key-padding
mask enter it as one additive float mask, and so does any other additive bias (ALiBi, a bias
computed from a pair matrix): the module takes it as `static_bias`. The other positional
schemes are in `positions.py`.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.dropout import Dropout
from squeezer.nn.positions import apply_rotary
from squeezer.nn.tracing import exporting

__all__ = [
    "MultiHeadSelfAttention",
    "RelPositionMultiHeadAttention",
    "attention_dtype",
    "explicit_attention",
    "padding_key_bias",
    "relative_positional_encoding",
    "relative_shift",
]


def relative_positional_encoding(
    length: int, d_model: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Sinusoids for relative distances T-1, T-2, ..., -(T-1): (2T - 1, D).

    Row k encodes distance T - 1 - k; even channels are sines, odd channels cosines (NeMo's
    and ESPnet's layout), so imported weights see the encoding they were trained with.
    """
    # float32 at least: half-precision angles would be off by whole radians at long distances.
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    positions = torch.arange(length - 1, -length, -1, device=device, dtype=compute)
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=compute) * (-math.log(10000.0) / d_model)
    )
    angles = positions.unsqueeze(1) * inv_freq  # (2T - 1, D / 2)
    encoding = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (2T - 1, D / 2, 2)
    return encoding.flatten(1).to(dtype)  # (2T - 1, D)


def relative_shift(scores: torch.Tensor) -> torch.Tensor:
    """(B, H, T, 2T - 1) scores by distance -> (B, H, T, T) scores by key, without a copy.

    Entry [i, j] of the result is entry [i, T - 1 - i + j] of the input: the column for
    distance i - j. That is a strided view: rows step by 2T - 2, columns by 1. ONNX has no
    strided views, so an export takes Transformer-XL's pad-and-reshape form of the same map.
    """
    if exporting():
        return _relative_shift_by_reshape(scores)
    if scores.requires_grad:
        return _RelativeShift.apply(scores)
    return _shift_view(scores.contiguous())


def _shift_view(scores: torch.Tensor) -> torch.Tensor:
    """The (B, H, T, T) strided view of contiguous (B, H, T, 2T - 1) scores."""
    B, H, T, _ = scores.size()
    s_b, s_h, s_t, _ = scores.stride()
    return scores.as_strided((B, H, T, T), (s_b, s_h, s_t - 1, 1), scores.storage_offset() + T - 1)


class _RelativeShift(torch.autograd.Function):
    """`relative_shift` with a backward that writes each element of its gradient once.

    Autograd's own backward of a strided view zero-fills the whole (B, H, T, 2T - 1) gradient
    and then copies the (B, H, T, T) band into it: half the zeros are overwritten at once.
    Each row's band starts 2T - 2 elements after the previous one and is T long, so what lies
    outside the bands is the first T - 1 and last T - 1 elements of each (b, h) matrix and a
    gap of T - 2 between consecutive bands: three strided views, zeroed here.
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:
        ctx.shape = scores.shape
        return _shift_view(scores.contiguous())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        B, H, T, P = ctx.shape  # P = 2T - 1
        out = grad.new_empty(B, H, T, P)
        _shift_view(out).copy_(grad)
        matrices = out.view(B * H, T * P)  # (B H, T (2T - 1)): one row per (b, h)
        matrices[:, : T - 1].zero_()  # before row 0's band
        matrices[:, T * P - (T - 1) :].zero_()  # after row T - 1's band
        if T > 2:  # between the bands of rows i and i + 1, i < T - 1
            gaps = matrices.as_strided((B * H, T - 1, T - 2), (T * P, P - 1, 1), 2 * T - 1)
            gaps.zero_()
        return out


def _relative_shift_by_reshape(scores: torch.Tensor) -> torch.Tensor:
    """`relative_shift` with pads and reshapes only (Dai et al. 2019, Appendix B)."""
    B, H, T, P = scores.size()  # P = 2T - 1
    padded = F.pad(scores, (1, 0))  # (B, H, T, 2T): a zero column before distance T - 1
    # Read row-major as (2T, T), the first row is the padding; dropping it leaves each query
    # row shifted one column further than the row above: row i starts at column T - 1 - i.
    shifted = padded.reshape(B, H, P + 1, T)[:, :, 1:].reshape(B, H, T, P)  # (B, H, T, 2T - 1)
    return shifted[..., :T]  # (B, H, T, T)


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, dropout: nn.Module
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v with dropout on the weights: SDPA's math, spelled out.

    q, k, v (B, H, T, dh), bias (B, H, T, T) -> (B, H, T, dh).
    """
    # Scaling q (B, H, T, dh) instead of the scores (B, H, T, T) saves a pass over the largest
    # tensor each way, and the bias is added in place into the fresh scores.
    scores = torch.matmul(q * (1.0 / math.sqrt(q.size(-1))), k.transpose(-1, -2)).add_(bias)
    weights = dropout(scores.softmax(dim=-1))  # (B, H, T, T)
    return torch.matmul(weights, v)


def padding_key_bias(padding_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 at real keys, -inf at padded ones: padding_mask (B, T) -> (B, 1, 1, T) of `dtype`.

    Adding -inf is 6x faster than masked_fill on the strided scores, and broadcasts over heads
    and queries.
    """
    B, T = padding_mask.size()
    key_bias = torch.zeros(B, 1, 1, T, dtype=dtype, device=padding_mask.device)
    return key_bias.masked_fill_(padding_mask[:, None, None, :], float("-inf"))


@functools.cache
def _cpu_capability_below_avx512() -> bool:
    return torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX")


def attention_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype attention computes in for inputs like x: autocast's, when it is on."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _sdpa_fails(q: torch.Tensor) -> bool:
    """Whether SDPA would raise for these queries: torch 2.13's CPU attention in bf16 packs
    its operands for AMX whenever the processor has AMX, but that packing exists only in its
    AVX-512 kernels, so with ATEN_CPU_CAPABILITY set below avx512 (as CI's second code path
    does) it raises "pack_vnni2 is only supported when avx512 is supported" from about 64
    frames on. The explicit form computes the same softmax."""
    if q.device.type != "cpu" or not _cpu_capability_below_avx512():
        return False
    # SDPA runs in autocast's dtype whatever its inputs' (q + u is float32 there)
    return torch.bfloat16 in (q.dtype, attention_dtype(q))


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with a key-padding mask and the config's positional scheme.

    `position="relative"` (the paper's) adds Transformer-XL's position term with its own
    projection and u, v biases; "rope" rotates queries and keys; every other scheme is plain
    scaled dot-product attention (ALiBi and any attention bias come in through `static_bias`).
    Parameters of the relative scheme exist only under it.

    Args:
        config: uses d_model, num_heads, attention_dropout, position.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        D, H = config.d_model, config.num_heads
        self.num_heads = H
        self.head_dim = D // H
        self.position = config.position
        self.dropout = Dropout(config.attention_dropout)  # on the attention weights
        self.linear_q = nn.Linear(D, D)
        self.linear_k = nn.Linear(D, D)
        self.linear_v = nn.Linear(D, D)
        self.linear_out = nn.Linear(D, D)
        if self.position == "relative":
            self.linear_pos = nn.Linear(D, D, bias=False)
            # Zero-initialised content and position biases (u and v of Transformer-XL).
            self.pos_bias_u = nn.Parameter(torch.zeros(H, self.head_dim))
            self.pos_bias_v = nn.Parameter(torch.zeros(H, self.head_dim))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.size()
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, dh)

    def _queries_keys_bias(
        self,
        x: torch.Tensor,
        pos_emb: torch.Tensor | None,
        padding_mask: torch.Tensor,
        static_bias: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries and keys as the content scores take them, and the scores' additive part.

        x (B, T, D) -> q (B, H, T, dh), k (B, H, T, dh), bias broadcastable to (B, H, T, T).
        """
        q = self._heads(self.linear_q(x))  # (B, H, T, dh)
        k = self._heads(self.linear_k(x))
        if static_bias is not None:
            static_bias = static_bias.to(q.dtype)
        if self.position == "relative":
            bias = self._position_and_padding_bias(q, pos_emb, padding_mask, static_bias)
            return q + self.pos_bias_u.unsqueeze(1), k, bias
        if self.position == "rope":
            q, k = apply_rotary(q, pos_emb), apply_rotary(k, pos_emb)
        if static_bias is None:
            static_bias = padding_key_bias(padding_mask, q.dtype)  # (B, 1, 1, T)
        return q, k, static_bias

    @torch.no_grad()
    def attention_weights(
        self,
        x: torch.Tensor,
        pos_emb: torch.Tensor | None,
        padding_mask: torch.Tensor,
        static_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The softmax weights `forward` applies (without dropout), for analysis: x (B, T, D),
        padding_mask (B, T) -> (B, H, T, T), zero at padded keys."""
        q, k, bias = self._queries_keys_bias(x, pos_emb, padding_mask, static_bias)
        q = q * (1.0 / math.sqrt(self.head_dim))
        return (torch.matmul(q, k.transpose(-1, -2)) + bias).softmax(dim=-1)  # (B, H, T, T)

    def _position_and_padding_bias(
        self,
        q: torch.Tensor,
        pos_emb: torch.Tensor,
        padding_mask: torch.Tensor,
        static_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The scores' additive part: scaled (q + v) . p_(i-j), plus `static_bias` (or -inf at
        padded keys when there is none).

        q (B, H, T, dh), pos_emb (2T - 1, D), padding_mask (B, T) -> (B, H, T, T).
        """
        B, _, T, _ = q.size()
        p = self.linear_pos(pos_emb).view(-1, self.num_heads, self.head_dim)  # (2T-1, H, dh)
        p = p.permute(1, 2, 0)  # (H, dh, 2T - 1)
        scale = 1.0 / math.sqrt(self.head_dim)
        q_v = (q + self.pos_bias_v.unsqueeze(1)) * scale  # (B, H, T, dh)
        if static_bias is None:
            static_bias = padding_key_bias(padding_mask, q.dtype)  # (B, 1, 1, T)
        autograd = torch.is_grad_enabled() and (q_v.requires_grad or p.requires_grad)
        if autograd or q.device.type != "cpu" or exporting():
            return relative_shift(torch.matmul(q_v, p)) + static_bias  # (B, H, T, T)
        # Inference on CPU takes one utterance at a time: its (H, T, 2T - 1) scores stay in
        # cache until the shifted band is read out, where the whole batch's (16 MB at XS
        # size) went through memory and made this matmul 2x slower inside the encoder than
        # alone; the XS forward is about 5 % faster.
        bias = q.new_empty(B, self.num_heads, T, T)
        per_batch = static_bias.size(0) > 1
        for b in range(B):
            scores = torch.matmul(q_v[b : b + 1], p)  # (1, H, T, 2T - 1)
            static = static_bias[b : b + 1] if per_batch else static_bias
            torch.add(relative_shift(scores), static, out=bias[b : b + 1])
        return bias  # (B, H, T, T)

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: torch.Tensor | None,
        padding_mask: torch.Tensor,
        static_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, D), padding_mask (B, T) -> (B, T, D).

        pos_emb: the scheme's positions for T frames: relative (2T - 1, D), rope (2, T, dh/2),
        otherwise None. static_bias: what is added to every score besides the relative term,
        broadcastable to (B, H, T, T) and -inf at padded keys (the encoder combines padding,
        ALiBi and the user's attention bias once per forward); None: -inf at padded keys only.
        """
        B, T, D = x.size()
        q, k, bias = self._queries_keys_bias(x, pos_emb, padding_mask, static_bias)
        v = self._heads(self.linear_v(x))  # (B, H, T, dh)
        cpu_training = self.training and x.device.type == "cpu"
        if cpu_training or exporting() or _sdpa_fails(q):
            # SDPA's CPU fallback for a mask that needs gradients draws its dropout mask with
            # bernoulli_, which made attention 1.7x slower to train than this explicit form
            # (which also skips that fallback's copies when there is no dropout).
            # ONNX has no SDPA: the exporter decomposes it into this same maths, but with an
            # output layout that breaks the reshape below under dynamic shapes.
            out = explicit_attention(q, k, v, bias, self.dropout)
        else:
            dropout_p = self.dropout.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
        out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.linear_out(out)


# The name under which the paper's relative-position attention first shipped.
RelPositionMultiHeadAttention = MultiHeadSelfAttention
