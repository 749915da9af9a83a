"""The SDPA relative-position attention against a direct float64 implementation of its formula."""

from __future__ import annotations

import math

import pytest
import torch

from squeezer import EncoderConfig
from squeezer.nn.attention import (
    RelPositionMultiHeadAttention,
    _relative_shift_by_reshape,
    explicit_attention,
    relative_positional_encoding,
    relative_shift,
)


def sinusoid(distance: float, d_model: int) -> torch.Tensor:
    """Channel 2c is sin(r / 10000^(2c/D)), channel 2c + 1 its cosine."""
    out = torch.empty(d_model, dtype=torch.float64)
    for c in range(d_model // 2):
        angle = distance / 10000 ** (2 * c / d_model)
        out[2 * c], out[2 * c + 1] = math.sin(angle), math.cos(angle)
    return out


def direct_attention(module, x, padding_mask):
    """Scores ((q_i + u).k_j + (q_i + v).p_(i-j)) / sqrt(d), softmax over real keys, loops."""
    B, T, D = x.shape
    H, dh = module.num_heads, module.head_dim
    q = module.linear_q(x).view(B, T, H, dh)
    k = module.linear_k(x).view(B, T, H, dh)
    v = module.linear_v(x).view(B, T, H, dh)
    out = torch.zeros(B, T, H, dh, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            for i in range(T):
                scores = torch.full((T,), -math.inf, dtype=x.dtype)
                for j in range(T):
                    if padding_mask[b, j]:
                        continue
                    p = module.linear_pos(sinusoid(i - j, D)).view(H, dh)[h]
                    content = (q[b, i, h] + module.pos_bias_u[h]) @ k[b, j, h]
                    position = (q[b, i, h] + module.pos_bias_v[h]) @ p
                    scores[j] = (content + position) / math.sqrt(dh)
                out[b, i, h] = torch.softmax(scores, dim=0) @ v[b, :, h]
    return module.linear_out(out.reshape(B, T, D))


def float64_attention(num_heads: int) -> RelPositionMultiHeadAttention:
    """A d_model 16 float64 attention without dropout, its u and v biases drawn at random."""
    config = EncoderConfig(d_model=16, num_heads=num_heads, attention_dropout=0.0)
    module = RelPositionMultiHeadAttention(config).double()
    with torch.no_grad():
        module.pos_bias_u.normal_()
        module.pos_bias_v.normal_()
    return module


def padded_input() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (2, 9, 16) float64, a padding mask with the second sequence 6 frames long, pos_emb."""
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    padding_mask = torch.zeros(2, 9, dtype=torch.bool)
    padding_mask[1, 6:] = True
    return x, padding_mask, relative_positional_encoding(9, 16, x.device, x.dtype)


def test_relative_attention_matches_direct_float64_reference():
    module = float64_attention(num_heads=2).eval()
    x, padding_mask, pos_emb = padded_input()
    with torch.no_grad():
        ours = module(x, pos_emb, padding_mask)
        reference = direct_attention(module, x, padding_mask)
    # float64 throughout, outputs |y| < 1 from sums of 16 terms: ~1e-15 (measured 2e-16).
    assert (ours - reference).abs().max() < 1e-10


def test_inference_per_utterance_position_bias_equals_the_batched_autograd_one():
    """Without autograd on CPU the position scores go one utterance at a time."""
    module = float64_attention(num_heads=2).eval()
    x, padding_mask, pos_emb = padded_input()
    q = module._heads(module.linear_q(x))  # (B, H, T, dh), with autograd
    batched = module._position_and_padding_bias(q, pos_emb, padding_mask)
    with torch.no_grad():
        per_utterance = module._position_and_padding_bias(q.detach(), pos_emb, padding_mask)
    # The same float64 products per entry, batched or not: ~1e-16 (-inf at padded keys).
    torch.testing.assert_close(per_utterance, batched.detach(), rtol=1e-12, atol=1e-12)
    assert torch.isinf(per_utterance[1, :, :, 6:]).all()


def test_positional_encoding_rows_are_distances_from_t_minus_1_down():
    encoding = relative_positional_encoding(5, 8, torch.device("cpu"), torch.float64)
    assert encoding.shape == (9, 8)
    for row, distance in enumerate(range(4, -5, -1)):
        # float64 sin / cos of angles <= 4: ~1e-16 (measured 1e-16); 1e-6 catches a float32 path.
        torch.testing.assert_close(encoding[row], sinusoid(distance, 8), atol=1e-6, rtol=0)


@pytest.mark.parametrize("T", [1, 2, 7])
def test_relative_shift_equals_the_pad_and_reshape_trick(T):
    scores = torch.randn(2, 3, T, 2 * T - 1)
    # Transformer-XL's shift: pad a zero column, fold, drop the first row.
    padded = torch.nn.functional.pad(scores, (1, 0)).view(2, 3, 2 * T, T)
    reference = padded[:, :, 1:].reshape(2, 3, T, 2 * T - 1)[..., :T]
    assert torch.equal(relative_shift(scores), reference)


def test_explicit_training_attention_equals_sdpa_without_dropout():
    q, k, v = (torch.randn(2, 3, 11, 8, dtype=torch.float64) for _ in range(3))
    bias = torch.randn(2, 3, 11, 11, dtype=torch.float64)
    bias[1, ..., 7:] = float("-inf")
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    got = explicit_attention(q, k, v, bias, torch.nn.Identity())
    torch.testing.assert_close(got, expected)  # float64 defaults (1e-7): measured 9e-16


def test_training_mode_with_attention_dropout_keeps_padding_out():
    config = EncoderConfig(d_model=16, num_heads=2, attention_dropout=0.2)
    module = RelPositionMultiHeadAttention(config).train()
    x = torch.randn(2, 9, 16)
    padding_mask = torch.zeros(2, 9, dtype=torch.bool)
    padding_mask[1, 5:] = True
    pos_emb = relative_positional_encoding(9, 16, x.device, x.dtype)
    x_noisy = x.clone()
    x_noisy[1, 5:] = 1e4  # padded keys must not leak into real frames, even with dropout
    torch.manual_seed(1)
    clean = module(x, pos_emb, padding_mask)
    torch.manual_seed(1)
    noisy = module(x_noisy, pos_emb, padding_mask)
    # Padded keys get weight exactly 0 and rows are projected independently, so the real
    # rows are computed from the same numbers: equal (measured 0 on every path).
    torch.testing.assert_close(clean[1, :5], noisy[1, :5])


def test_export_form_of_the_relative_shift_is_the_same_map():
    """The pad-and-reshape shift that ONNX export takes equals the strided view exactly."""
    for T in (1, 2, 5, 16, 33):
        scores = torch.randn(2, 3, T, 2 * T - 1)
        assert torch.equal(_relative_shift_by_reshape(scores), relative_shift(scores))


def test_attention_weights_are_the_ones_forward_applies():
    # In float64 the weights times the values, through linear_out, are forward's output.
    torch.manual_seed(3)
    module = float64_attention(num_heads=4).eval()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    padding_mask = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    pos_emb = relative_positional_encoding(7, 16, x.device, x.dtype)
    weights = module.attention_weights(x, pos_emb, padding_mask)  # (B, H, T, T)
    assert torch.all(weights[1, :, :, 4:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 7, dtype=torch.float64))
    v = module.linear_v(x).view(2, 7, 4, 4).transpose(1, 2)  # (B, H, T, dh)
    out = module.linear_out((weights @ v).transpose(1, 2).reshape(2, 7, 16))
    with torch.no_grad():
        torch.testing.assert_close(out, module(x, pos_emb, padding_mask), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", [1, 2, 3, 8])
def test_relative_shift_gradient_equals_autograds_strided_view_gradient(T):
    """The hand-written backward (zeros outside the bands only) is autograd's own, exactly."""
    scores = torch.randn(2, 3, T, 2 * T - 1, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 3, T, T, dtype=torch.float64)
    (ours,) = torch.autograd.grad(relative_shift(scores), scores, grad)
    s_b, s_h, s_t, _ = scores.stride()
    view = scores.as_strided((2, 3, T, T), (s_b, s_h, s_t - 1, 1), T - 1)
    (reference,) = torch.autograd.grad(view, scores, grad)
    assert torch.equal(ours, reference)


def test_training_path_matches_the_sdpa_path_with_gradients():
    """On CPU, training runs the explicit attention; without dropout it is the SDPA maths."""
    torch.manual_seed(4)
    module = float64_attention(num_heads=2)
    x, padding_mask, pos_emb = padded_input()
    results = []
    for training in (True, False):
        module.train(training)
        module.zero_grad()
        x_in = x.clone().requires_grad_()
        out = module(x_in, pos_emb, padding_mask)
        out.pow(2).sum().backward()
        results.append((out.detach(), x_in.grad, module.linear_pos.weight.grad.clone()))
    # float64, sums of <= 16 terms of size ~1: the two orders agree to ~1e-15 (measured 4e-16).
    for train_value, eval_value in zip(*results, strict=True):
        torch.testing.assert_close(train_value, eval_value, rtol=1e-12, atol=1e-12)


def test_bf16_attention_below_avx512_takes_the_explicit_form(monkeypatch):
    """torch's bf16 CPU attention raises on AMX processors run below their AVX-512 kernels
    (ATEN_CPU_CAPABILITY=default, CI's second code path); the explicit form stands in."""
    from squeezer.nn import attention

    module = float64_attention(num_heads=2).float().eval()
    x, padding_mask, pos_emb = (t.float() if t.is_floating_point() else t for t in padded_input())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        reference = module(x, pos_emb, padding_mask).float()

        def refuse(*args, **kwargs):
            raise RuntimeError("pack_vnni2 is only supported when avx512 is supported")

        monkeypatch.setattr(attention, "_cpu_capability_below_avx512", lambda: True)
        monkeypatch.setattr(attention.F, "scaled_dot_product_attention", refuse)
        explicit = module(x, pos_emb, padding_mask).float()
    # Both in bf16 (8 bits of mantissa, an ulp of 2e-3 at the outputs' 0.5): the two orders of
    # rounding differ by about one ulp (measured 2e-3); 10 ulps of room.
    torch.testing.assert_close(explicit, reference, atol=0.02, rtol=0)
