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
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))
        keep = (~padding_mask).to(x32.dtype)[:, None, None, :]  # (B, 1, 1, T)
        count = keep.sum().clamp(min=1)
        mean = (x32 * keep).sum(dim=(0, 2, 3)) / count  # (C,)
        centred = (x32 - mean[None, :, None, None]) * keep
        var = centred.pow(2).sum(dim=(0, 2, 3)) / count  # biased, used to normalise
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = (
                self.momentum
                if self.momentum is not None
                else 1.0 / float(self.num_batches_tracked)
            )
            unbiased = var * count / (count - 1).clamp(min=1)
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
            self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)  # (C,)
        shift = self.bias - mean * scale
        return (x32 * scale[None, :, None, None] + shift[None, :, None, None]).to(x.dtype)
