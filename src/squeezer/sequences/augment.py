"""Augmentations of non-audio training sequences, each a switch of the recipe's `augment:`.

Two places, because two representations: mirroring and time resampling change a sequence's
raw values and length, so they act on one record's (T, F) array before normalisation, in the
loader (`augment_array`); masks, noise and mixup act on the normalised, padded batch
(`augment_batch`). Both draw from the generator they are given, so a resumed run draws the
same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from squeezer.nn.masks import lengths_to_padding_mask
from squeezer.sequences.dataset import SequenceBatch
from squeezer.sequences.recipe import AugmentConfig

__all__ = ["augment_array", "augment_batch", "mirror", "stretch"]


def mirror(features: np.ndarray, columns: tuple[int, ...], center: float) -> np.ndarray:
    """(T, F) with each of `columns` reflected about `center`: x -> 2 * center - x."""
    out = features.copy()
    out[:, list(columns)] = 2 * center - out[:, list(columns)]
    return out


def stretch(features: np.ndarray, factor: float) -> np.ndarray:
    """(T, F) -> (max(1, round(T * factor)), F) by linear interpolation along time, with the
    first and last positions kept where they are."""
    T = features.shape[0]
    new_T = max(1, round(T * factor))
    if new_T == T or T == 1:
        return np.repeat(features[:1], new_T, axis=0) if T == 1 else features
    source = np.linspace(0.0, T - 1, new_T)  # where each new position reads
    left = np.floor(source).astype(np.int64).clip(0, T - 2)
    weight = (source - left)[:, None].astype(np.float32)
    return (1 - weight) * features[left] + weight * features[left + 1]


def augment_array(
    features: np.ndarray, config: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """One record's raw (T, F) features, mirrored and resampled as `config` says."""
    if config.mirror_columns and rng.random() < config.mirror_prob:
        if max(config.mirror_columns) >= features.shape[1]:
            raise ValueError(
                f"augment.mirror_columns: column {max(config.mirror_columns)} is beyond the "
                f"{features.shape[1]} features"
            )
        features = mirror(features, config.mirror_columns, config.mirror_center)
    if config.stretch is not None:
        low, high = config.stretch
        features = stretch(features, float(rng.uniform(low, high)))
    return np.ascontiguousarray(features, dtype=np.float32)


def augment_batch(
    batch: SequenceBatch,
    config: AugmentConfig,
    generator: torch.Generator | None = None,
    num_classes: int | None = None,
) -> SequenceBatch:
    """Time and feature masks, Gaussian noise and mixup on a normalised batch; padding stays
    zero. Mixup (classify) turns the labels into soft labels (B, num_classes)."""
    features, lengths = batch.features.clone(), batch.lengths
    B, T, F = features.shape
    draw = dict(generator=generator)
    for _ in range(config.time_masks):
        widths = (torch.rand(B, **draw) * config.time_mask_fraction * lengths).long()
        starts = (torch.rand(B, **draw) * (lengths - widths + 1)).long()
        positions = torch.arange(T)
        masked = (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
        features = features.masked_fill(masked[:, :, None], 0.0)
    for _ in range(config.feature_masks):
        widths = torch.randint(0, config.feature_mask_width + 1, (B,), **draw)
        starts = (torch.rand(B, **draw) * (F - widths + 1)).long()
        columns = torch.arange(F)
        masked = (columns >= starts[:, None]) & (columns < (starts + widths)[:, None])
        features = features.masked_fill(masked[:, None, :], 0.0)
    if config.noise_std:
        features = features + config.noise_std * torch.randn(features.shape, **draw)
    features = features.masked_fill(lengths_to_padding_mask(lengths, T)[:, :, None], 0.0)
    batch = dataclasses.replace(batch, features=features)
    if config.mixup_alpha and B > 1:
        if num_classes is None:
            raise ValueError("mixup needs the number of classes")
        batch = _mixup(batch, config.mixup_alpha, generator, num_classes)
    return batch


def _mixup(
    batch: SequenceBatch, alpha: float, generator: torch.Generator | None, num_classes: int
) -> SequenceBatch:
    """Each sequence mixed with another of the batch: lam * x_i + (1 - lam) * x_j on the padded
    features and pair matrices (the longer length is kept), and the same mixture of their
    labels and weights."""
    B = batch.features.size(0)
    gammas = torch.distributions.Gamma(torch.full((2, B), alpha), torch.ones(2, B))
    with torch.random.fork_rng(devices=[]):  # Gamma draws from the global generator only
        if generator is not None:
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        a, b = gammas.sample()
    lam = a / (a + b)  # Beta(alpha, alpha), (B,)
    partner = torch.randperm(B, generator=generator)

    def mix(x: torch.Tensor) -> torch.Tensor:
        shape = (B,) + (1,) * (x.dim() - 1)
        return lam.view(shape) * x + (1 - lam).view(shape) * x[partner]

    features = mix(batch.features)
    pair = None if batch.pair is None else mix(batch.pair)
    lengths = torch.maximum(batch.lengths, batch.lengths[partner])
    labels = batch.labels
    if labels.dim() == 1:  # hard labels -> one-hot
        labels = torch.nn.functional.one_hot(labels, num_classes).float()
    return dataclasses.replace(batch, features=features, lengths=lengths, pair=pair,
                               labels=mix(labels), weights=mix(batch.weights))  # fmt: skip
