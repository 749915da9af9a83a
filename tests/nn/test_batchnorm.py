from __future__ import annotations

import torch

from squeezer.nn.batchnorm import MaskedBatchNorm


def test_training_statistics_ignore_padding():
    torch.manual_seed(0)
    norm = MaskedBatchNorm(3).train()
    reference = torch.nn.BatchNorm2d(3).train()
    real = torch.randn(2, 3, 1, 5)
    padded = torch.cat([real, torch.full((2, 3, 1, 4), 7.0)], dim=-1)  # 4 padded frames
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[:, 5:] = True
    ours = norm(padded, mask)[..., :5]
    expected = reference(real)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(norm.running_mean, reference.running_mean)
    torch.testing.assert_close(norm.running_var, reference.running_var)
    assert int(norm.num_batches_tracked) == 1


def test_eval_uses_running_statistics_and_gradients_flow():
    norm = MaskedBatchNorm(2)
    x = torch.randn(3, 2, 1, 6, requires_grad=True)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[0, 4:] = True
    norm(x, mask).sum().backward()
    assert x.grad is not None and norm.weight.grad is not None
    norm.eval()
    plain = torch.nn.BatchNorm2d(2).eval()
    plain.load_state_dict(norm.state_dict())
    torch.testing.assert_close(norm(x, mask), plain(x))


def _batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x (4, 6, 1, 50) of mean 3 and std 2, padding mask) pairs with ragged lengths."""
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(count):
        x = 3.0 + 2.0 * torch.randn(4, 6, 1, 50, generator=generator)
        lengths = torch.randint(10, 51, (4,), generator=generator)
        batches.append((x, torch.arange(50)[None, :] >= lengths[:, None]))
    return batches


def test_bf16_autocast_training_keeps_float32_statistics():
    """Under autocast the statistics are float32 sums of the bf16 input, the output is bf16."""
    in_bf16, in_fp32 = MaskedBatchNorm(6).train(), MaskedBatchNorm(6).train()
    for x, mask in _batches(5):
        x = x.bfloat16()  # what a convolution under bf16 autocast hands the norm
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = in_bf16(x, mask)
        expected = in_fp32(x.float(), mask)  # the same rounded input, all in float32
        assert out.dtype == torch.bfloat16
        # bf16 keeps 8 significant bits: the output is the float32 result rounded once.
        torch.testing.assert_close(out.float(), expected, rtol=2**-8, atol=2**-8)
    assert in_bf16.running_mean.dtype == torch.float32
    # Same float32 arithmetic on the same values: equal up to float32 rounding.
    torch.testing.assert_close(in_bf16.running_mean, in_fp32.running_mean)
    torch.testing.assert_close(in_bf16.running_var, in_fp32.running_var)


def test_bf16_statistics_stay_close_to_float32_ones_on_the_same_batches():
    """Rounding the input to bf16 (relative error <= 2**-9) barely moves mean and variance."""
    in_bf16, in_fp32 = MaskedBatchNorm(6).train(), MaskedBatchNorm(6).train()
    for x, mask in _batches(5):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            in_bf16(x.bfloat16(), mask)
        in_fp32(x, mask)
    # Per-element relative error <= 2**-9 on |x| <~ 11: means move by < 11 * 2**-9 = 0.02 at
    # the very worst, variances (~4) by < 2 * 2**-9 relative plus that shift squared.
    torch.testing.assert_close(in_bf16.running_mean, in_fp32.running_mean, rtol=0, atol=0.02)
    torch.testing.assert_close(in_bf16.running_var, in_fp32.running_var, rtol=2**-7, atol=0)


def test_bf16_autocast_backward_and_eval():
    norm = MaskedBatchNorm(6).train()
    x, mask = _batches(1)[0]
    x = x.bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        norm(x, mask).float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    assert norm.weight.grad is not None and norm.weight.grad.dtype == torch.float32
    norm.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm(x.detach(), mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), norm(x.detach().float(), mask), rtol=2**-8, atol=2**-8)


def test_masked_statistics_gradient_is_exact_in_float64():
    """The hand-written backward against finite differences, padded frames included."""
    from squeezer.nn.batchnorm import _MaskedBatchNormFunction

    torch.manual_seed(2)
    mask = torch.arange(12)[None, :] >= torch.tensor([12, 5, 9])[:, None]  # (3, 12)
    keep = (~mask).double()[:, None, None, :]
    for layout in (torch.contiguous_format, torch.channels_last):
        x = (1.5 + torch.randn(3, 4, 1, 12, dtype=torch.float64)).contiguous(memory_format=layout)
        weight = torch.randn(4, dtype=torch.float64)
        bias = torch.randn(4, dtype=torch.float64)
        inputs = tuple(t.requires_grad_() for t in (x, weight, bias))

        def normalise(x, weight, bias):
            return _MaskedBatchNormFunction.apply(x, keep, keep.sum(), weight, bias, 1e-5)[0]

        assert torch.autograd.gradcheck(normalise, inputs)
