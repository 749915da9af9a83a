from __future__ import annotations

import pytest
import torch

from squeezer.nn.dropout import Dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drops_the_right_fraction_and_rescales(p):
    dropout = Dropout(p).train()
    x = torch.ones(200_000)
    y = dropout(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.005)
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))


def test_masks_differ_between_calls_and_lanes_are_unbiased():
    dropout = Dropout(0.5).train()
    x = torch.ones(4, 50_000)
    first, second = dropout(x), dropout(x)
    assert not torch.equal(first, second)
    # Every 16-bit lane of the random words is used: each column class keeps about half.
    for lane in range(4):
        kept = (first.flatten()[lane::4] != 0).float().mean().item()
        assert kept == pytest.approx(0.5, abs=0.02), lane


def test_gradient_flows_through_kept_elements_only():
    dropout = Dropout(0.3).train()
    x = torch.randn(64, 64, requires_grad=True)
    y = dropout(x)
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)


def test_identity_in_eval_and_at_zero_probability():
    x = torch.randn(10, 10)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert isinstance(Dropout(0.1), torch.nn.Dropout)


def test_backward_multiplies_by_the_same_mask_as_forward():
    # The mask is rebuilt in backward from the saved random lanes: it must be forward's mask.
    dropout = Dropout(0.25).train()
    x = torch.ones(3, 1000, requires_grad=True)
    y = dropout(x)
    grad = torch.randn(3, 1000)
    y.backward(grad)
    assert torch.equal(x.grad, grad * y)  # y is the mask itself: 0 or 1 / (1 - p) exactly


def test_keeps_the_input_dtype():
    dropout = Dropout(0.1).train()
    x = torch.randn(8, 100, dtype=torch.bfloat16, requires_grad=True)
    y = dropout(x)
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
    kept = y[y != 0].float() / x[y != 0].detach().float()
    # 1 / 0.9 rounded to bf16 (8 significant bits), times x rounded again: within 2 ** -7.
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.9), rtol=2**-7, atol=0)
