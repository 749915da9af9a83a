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
