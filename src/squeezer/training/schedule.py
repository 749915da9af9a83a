"""Learning-rate schedules: the paper's Noam hold-annealing, and cosine annealing for step budgets.

Squeezeformer trains with NeMo's `NoamHoldAnnealing` (paper Section 4.1): the LR rises linearly
to its peak over `warmup_steps`, stays there for `hold_steps`, then decays as

    lr(step) = peak * warmup_steps^d / (step - hold_steps)^d,    floored at min_lr,

which equals the peak at the end of the hold and falls off as step^-d (d = `decay_rate`, 1.0
in the paper's recipe).

`CosineHoldAnnealing` (NeMo's `CosineAnnealing` with a hold) has the same warm-up and hold, then
follows half a cosine from the peak down to min_lr at `total_steps`. It needs a step budget
(run.max_steps) and suits short runs, where Noam's slow 1/step tail never anneals the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

if TYPE_CHECKING:
    from squeezer.training.recipe import OptimConfig

__all__ = ["CosineHoldAnnealing", "NoamHoldAnnealing", "build_schedule", "noam_hold_annealing_lr"]


@dataclass(frozen=True)
class _WarmupHold:
    """What both schedules share: a linear warm-up to the peak, a hold at it, then `_decay`."""

    warmup_steps: int
    hold_steps: int

    def __post_init__(self) -> None:
        if self.warmup_steps < 1:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be >= 1")
        if self.hold_steps < 0:
            raise ValueError(f"hold_steps={self.hold_steps} must be >= 0")
        min_lr_ratio = self.min_lr_ratio  # a field of each schedule, after its own fields
        if not 0 <= min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio={min_lr_ratio} must be in [0, 1]")

    def factor(self, step: int) -> float:
        """The multiplier of the peak LR at an optimiser step."""
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if step < self.warmup_steps + self.hold_steps:
            return 1.0
        return self._decay(step)

    def _decay(self, step: int) -> float:
        raise NotImplementedError

    def scheduler(self, optimizer: Optimizer, last_step: int = -1) -> LambdaLR:
        """A torch scheduler applying the factor to each param group's initial LR."""
        return LambdaLR(optimizer, self.factor, last_epoch=last_step)


@dataclass(frozen=True)
class NoamHoldAnnealing(_WarmupHold):
    """Schedule settings; `factor(step)` is the multiplier of the peak LR at an optimiser step."""

    decay_rate: float = 1.0
    min_lr_ratio: float = 0.0  # min_lr / peak_lr

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decay_rate <= 0:
            raise ValueError(f"decay_rate={self.decay_rate} must be positive")

    def _decay(self, step: int) -> float:
        decay = (self.warmup_steps / max(1, step - self.hold_steps)) ** self.decay_rate
        return max(min(decay, 1.0), self.min_lr_ratio)


@dataclass(frozen=True)
class CosineHoldAnnealing(_WarmupHold):
    """Warm-up, hold, then a half cosine reaching min_lr at `total_steps` (and staying there)."""

    total_steps: int
    min_lr_ratio: float = 0.0  # min_lr / peak_lr

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.total_steps <= self.warmup_steps + self.hold_steps:
            raise ValueError(
                f"total_steps={self.total_steps} must exceed warmup_steps + hold_steps"
                f" ({self.warmup_steps + self.hold_steps})"
            )

    def _decay(self, step: int) -> float:
        decay_start = self.warmup_steps + self.hold_steps
        progress = min(1.0, (step - decay_start) / (self.total_steps - decay_start))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine


def build_schedule(
    optim: OptimConfig, max_steps: int | None
) -> NoamHoldAnnealing | CosineHoldAnnealing:
    """The recipe's schedule; cosine needs the step budget (run.max_steps) to anneal towards."""
    min_lr_ratio = optim.min_lr / optim.peak_lr
    if optim.schedule == "noam":
        return NoamHoldAnnealing(
            optim.warmup_steps, optim.hold_steps, optim.decay_rate, min_lr_ratio
        )
    if optim.schedule == "cosine":
        if max_steps is None:
            raise ValueError("optim.schedule=cosine needs run.max_steps (the step it anneals to)")
        return CosineHoldAnnealing(optim.warmup_steps, optim.hold_steps, max_steps, min_lr_ratio)
    raise ValueError(f"optim.schedule={optim.schedule!r}: expected 'noam' or 'cosine'")


def noam_hold_annealing_lr(
    step: int, peak_lr: float, warmup_steps: int, hold_steps: int, decay_rate: float, min_lr: float
) -> float:
    """The LR at `step` in absolute terms (for plots and tests)."""
    schedule = NoamHoldAnnealing(warmup_steps, hold_steps, decay_rate, min_lr / peak_lr)
    return peak_lr * schedule.factor(step)
