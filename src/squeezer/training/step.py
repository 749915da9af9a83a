"""One optimiser step's pieces: the CTC loss, the precision it runs in, and what a skipped
step must put back.

The loop (`squeezer.training.loop`) decides when a step is skipped (a non-finite loss or
gradient on any rank); this module holds what that needs and nothing about the run.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

import torch

from squeezer.nn import losses as nn_losses
from squeezer.training.recipe import TrainConfig

if TYPE_CHECKING:  # the speech stack: the loop that imports this module runs without it
    from squeezer.data.dataset import AsrBatch
    from squeezer.features import SpecAugment

__all__ = ["BufferSnapshot", "autocast", "ctc_loss"]


def autocast(config: TrainConfig, device: torch.device) -> AbstractContextManager:
    """The step's precision: bf16 autocast when `run.precision` asks (auto: on CUDA), else fp32."""
    precision = config.run.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def ctc_loss(model: torch.nn.Module, batch: AsrBatch, augment: SpecAugment | None) -> torch.Tensor:
    """The batch's CTC loss (SpecAugment first when given): a scalar, float32 even under bf16."""
    features = batch.features
    if augment is not None:
        features = augment(features, batch.feature_lengths)
    log_probs, lengths = model(features, batch.feature_lengths)
    return nn_losses.ctc_loss(log_probs, lengths, batch.targets, batch.target_lengths)


class BufferSnapshot:
    """A model's buffers (BatchNorm running statistics) as a step starts.

    The forward pass moves them before anyone knows whether the loss is finite; a skipped step
    puts them back, or one NaN batch would leave NaN means in every BatchNorm for good.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.saved = [buffer.clone() for buffer in model.buffers()]

    @torch.no_grad()
    def restore(self) -> None:
        for buffer, saved in zip(self.model.buffers(), self.saved, strict=True):
            buffer.copy_(saved)
