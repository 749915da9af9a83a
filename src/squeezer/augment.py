"""SpecAugment (Park et al. 2019) as the paper trains with it: frequency and time masks.

Padding-aware and vectorised; identity in eval mode. Settings per PAPER.md: 2 frequency masks up
to 27 bins, 5-10 time masks each up to 5 % of the utterance's own length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from squeezer.nn.masks import lengths_to_padding_mask

__all__ = ["SpecAugment", "SpecAugmentConfig"]


@dataclass(frozen=True)
class SpecAugmentConfig:
    """SpecAugment (Park et al. 2019) as the paper's recipe: masks per utterance and widths.

    freq_width: widest frequency mask in bins. time_width: widest time mask; a float in [0, 1]
    is a fraction of each utterance's own length (at least one frame), an int is frames, as
    NeMo's `SpectrogramAugmentation`. The paper uses 5 time masks for XS/S/SM, 7 for M, 10 for
    ML/L.
    """

    freq_masks: int = 2
    freq_width: int = 27
    time_masks: int = 5
    time_width: float | int = 0.05

    def __post_init__(self) -> None:
        for name in ("freq_masks", "freq_width", "time_masks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}={value!r} must be a non-negative integer")
        width = self.time_width
        if isinstance(width, bool) or not isinstance(width, (int, float)):
            raise ValueError(f"time_width={width!r} must be a fraction (float) or frames (int)")
        if isinstance(width, float) and not 0.0 <= width <= 1.0:
            raise ValueError(f"time_width={width!r} as a fraction must lie in [0, 1]")
        if width < 0:
            raise ValueError(f"time_width={width!r} must be >= 0")

    def replace(self, **changes: Any) -> SpecAugmentConfig:
        return dataclasses.replace(self, **changes)


class SpecAugment(nn.Module):
    """Zero random frequency bands and time spans of each utterance; identity in eval mode.

    Masked values are set to 0, which after per-feature normalisation is the utterance's mean of
    that bin. Time masks lie inside each utterance's real frames; padded frames are never
    touched. Each width is uniform in [0, max width], each start uniform over the positions
    that keep the widest mask inside (NeMo's draws). Randomness comes from torch's RNG of the
    features' device, or from `generator`.
    """

    def __init__(self, config: SpecAugmentConfig | None = None) -> None:
        super().__init__()
        self.config = config or SpecAugmentConfig()

    def forward(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """features (B, T, F), lengths (B,) frames -> features (B, T, F), masked if training."""
        cfg = self.config
        if not self.training or cfg.freq_masks + cfg.time_masks == 0:
            return features
        return features.masked_fill(self.sample_mask(features, lengths, generator), 0.0)

    def sample_mask(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """A fresh (B, T, F) bool mask for `features`, True where SpecAugment zeroes."""
        cfg = self.config
        _, frames, bins = features.shape
        lengths = lengths.to(features.device).long().clamp(max=frames)
        if isinstance(cfg.time_width, float):
            time_width = (lengths.double() * cfg.time_width).floor().long().clamp(min=1)
        else:
            time_width = torch.full_like(lengths, cfg.time_width)
        time = _random_spans(cfg.time_masks, time_width, lengths, frames, generator)
        all_bins = torch.full_like(lengths, bins)
        freq_width = torch.full_like(lengths, cfg.freq_width)
        freq = _random_spans(cfg.freq_masks, freq_width, all_bins, bins, generator)
        real = ~lengths_to_padding_mask(lengths, frames)  # (B, T)
        mask = freq.unsqueeze(1) & real.unsqueeze(2)  # (B, T, F): bands on real frames only
        return mask.logical_or_(time.unsqueeze(2))  # time spans already end within lengths


def _random_spans(
    count: int,
    max_width: torch.Tensor,
    limit: torch.Tensor,
    size: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """(B, size) bool: the union of `count` random spans per row, each inside [0, limit).

    max_width, limit: (B,) int64. Widths are uniform in [0, w] and starts uniform in
    [0, limit - w], with w = min(max_width, limit), so no span crosses `limit`.
    """
    batch = limit.shape[0]
    device = limit.device
    if count == 0 or batch == 0:
        return torch.zeros(batch, size, dtype=torch.bool, device=device)
    widest = max_width.clamp(max=limit).unsqueeze(1)  # (B, 1)
    draws = torch.rand(2, batch, count, dtype=torch.float64, device=device, generator=generator)
    width = (draws[0] * (widest + 1)).long().clamp(max=widest)  # (B, count), U{0..w}
    last_start = limit.unsqueeze(1) - widest
    start = (draws[1] * (last_start + 1)).long().clamp(max=last_start)  # U{0..limit - w}
    position = torch.arange(size, device=device)  # (size,)
    inside = (position >= start.unsqueeze(2)) & (position < (start + width).unsqueeze(2))
    return inside.any(dim=1)  # (B, count, size) -> (B, size)
