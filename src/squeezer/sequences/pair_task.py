"""A per-position regression task whose answer needs a pair matrix: a check for `attn_bias`.

Each sequence has random features and a random pairing of most of its positions, given as a
(T, T) 0/1 pair matrix, as an RNA sequence's base pairs are given as a base-pair-probability
matrix in the Ribonanza solutions. Two targets per position:

- target 0 is a fixed function of the *partner's* features, tanh(a . x_partner), unknown (NaN)
  at unpaired positions. Nothing in a position's own neighbourhood tells who its partner is,
  so a model without the pair matrix cannot beat predicting the mean (0) by much;
- target 1 is a fixed function of the features `offset` positions earlier,
  tanh(b . x_(i-offset)), unknown for the first `offset`: an order-dependent target. Three
  positions back (the default) lie within the convolutions' reach, so any positional scheme
  serves it; further back than the convolutions reach, only attention that knows relative
  positions can.

The functions a and b are the same for every split (drawn from FUNCTION_SEED); the data of each
split come from its own seed, so train and test never share a sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["FEATURE_DIM", "PAIRED_FRACTION", "PairTaskBatch", "pair_task_batch"]

FEATURE_DIM = 8
PAIRED_FRACTION = 0.8  # of each sequence's positions
LOCAL_OFFSET = 3  # target 1 reads the features this many positions back, by default
FUNCTION_SEED = 1234


@dataclass(frozen=True)
class PairTaskBatch:
    """features (B, T, F), lengths (B,), pair (B, T, T) 0/1, targets (B, T, 2) with NaN where
    unknown; everything past a sequence's length is padding (zero, NaN in targets)."""

    features: torch.Tensor
    lengths: torch.Tensor
    pair: torch.Tensor
    targets: torch.Tensor


def _functions() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(FUNCTION_SEED)
    a, b = torch.randn(2, FEATURE_DIM, generator=generator)
    return a / a.norm(), b / b.norm()  # a . x ~ N(0, 1) for standard normal x


def pair_task_batch(
    batch_size: int,
    min_length: int,
    max_length: int,
    generator: torch.Generator,
    offset: int = LOCAL_OFFSET,
) -> PairTaskBatch:
    """`batch_size` sequences with lengths uniform in [min_length, max_length]; target 1
    reads the features `offset` positions back."""
    if not 2 <= min_length <= max_length:
        raise ValueError(f"lengths must satisfy 2 <= min <= max, got {min_length}, {max_length}")
    if offset < 1:
        raise ValueError(f"offset={offset} must be positive")
    a, b = _functions()
    lengths = torch.randint(min_length, max_length + 1, (batch_size,), generator=generator)
    T = int(lengths.max())
    features = torch.zeros(batch_size, T, FEATURE_DIM)
    pair = torch.zeros(batch_size, T, T)
    targets = torch.full((batch_size, T, 2), float("nan"))
    for row, length in enumerate(lengths.tolist()):
        x = torch.randn(length, FEATURE_DIM, generator=generator)
        order = torch.randperm(length, generator=generator)
        pairs = int(PAIRED_FRACTION * length) // 2
        first, second = order[: 2 * pairs : 2], order[1 : 2 * pairs : 2]
        pair[row, first, second] = pair[row, second, first] = 1.0
        targets[row, first, 0] = torch.tanh(x[second] @ a)
        targets[row, second, 0] = torch.tanh(x[first] @ a)
        if length > offset:
            targets[row, offset:length, 1] = torch.tanh(x[: length - offset] @ b)
        features[row, :length] = x
    return PairTaskBatch(features, lengths, pair, targets)
