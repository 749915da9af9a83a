"""BatchNorm over real frames only: padding must not shift the statistics.

`nn.BatchNorm` in training mode averages over every position of the padded batch, so the
statistics a frame is normalised with depend on how much padding its batch carries, and the
running statistics used in eval drift away from the ones seen in training (a trained model
then scores worse in eval mode than in train mode on the same data). Here the batch mean and
variance are taken over real frames; eval mode is plain BatchNorm with the running statistics.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MaskedBatchNorm"]


class _MaskedBatchNormFunction(torch.autograd.Function):
    """Normalise x (B, C, 1, T) with the mean and variance of its real frames.

    Forward and backward are written out: as composed autograd ops the masked statistics took
    about 15 passes over the activations, 4x plain BatchNorm (docs/benchmarks.md). With N real
    frames, x^ = (x - mean) * rstd and y = x^ * w + b at every frame, the gradient is

        dx = w * rstd * (g - keep / N * (sum(g) + x^ * sum(g * x^)))

    with sums over all frames, padded ones included (their outputs depend on w, b and the
    statistics too), and keep = 1 at real frames, 0 at padded ones (they do not enter the
    statistics).
    """

    @staticmethod
    def forward(ctx, x, keep, count, weight, bias, eps):
        compute = torch.promote_types(x.dtype, torch.float32)
        x32 = x.to(compute)
        mean = (x32 * keep).sum(dim=(0, 2, 3)) / count  # (C,)
        centred = x32 - mean[None, :, None, None]
        var = centred.mul_(keep).square_().sum(dim=(0, 2, 3)) / count  # biased, (C,)
        rstd = torch.rsqrt(var + eps)
        scale = weight.to(compute) * rstd
        shift = bias.to(compute) - mean * scale
        y = torch.addcmul(shift[None, :, None, None], x32, scale[None, :, None, None])
        ctx.save_for_backward(x, keep, count, mean, rstd, weight)
        ctx.mark_non_differentiable(mean, var)  # for the running statistics only
        return y.to(x.dtype), mean, var

    @staticmethod
    def backward(ctx, grad, _grad_mean, _grad_var):
        x, keep, count, mean, rstd, weight = ctx.saved_tensors
        compute = mean.dtype
        g = grad.to(compute)
        x_hat = (x.to(compute) - mean[None, :, None, None]).mul_(rstd[None, :, None, None])
        grad_bias = g.sum(dim=(0, 2, 3))  # (C,)
        grad_weight = (g * x_hat).sum(dim=(0, 2, 3))  # (C,)
        grad_x = None
        if ctx.needs_input_grad[0]:
            mixing = x_hat.mul_(grad_weight[None, :, None, None] / count)
            mixing.add_(grad_bias[None, :, None, None] / count).mul_(keep)
            grad_x = (g - mixing).mul_((weight.to(compute) * rstd)[None, :, None, None])
            grad_x = grad_x.to(x.dtype)
        return grad_x, None, None, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), None


class MaskedBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d on (B, C, 1, T) whose training statistics skip padded frames.

    The statistics are float32 whatever the autocast dtype (torch's own BatchNorm does the
    same): a bf16 sum over every real frame of a batch keeps 8 bits of mantissa, and the
    running statistics it updates are float32. The output has the input's dtype.
    """

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, 1, T), padding_mask (B, T) True = pad -> (B, C, 1, T)."""
        if not self.training or padding_mask is None or not self.track_running_stats:
            return super().forward(x)
        compute = torch.promote_types(x.dtype, torch.float32)
        keep = (~padding_mask).to(compute)[:, None, None, :]  # (B, 1, 1, T)
        count = keep.sum().clamp(min=1)  # a tensor: no host sync on an accelerator
        y, mean, var = _MaskedBatchNormFunction.apply(
            x, keep, count, self.weight, self.bias, self.eps
        )
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = (
                self.momentum
                if self.momentum is not None
                else 1.0 / float(self.num_batches_tracked)
            )
            unbiased = var * count / (count - 1).clamp(min=1)
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        return y
