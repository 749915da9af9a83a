"""Augmentations of non-audio sequences: what each does, that padding stays zero, and that a
generator's seed decides every draw."""

from __future__ import annotations

import numpy as np
import torch

from squeezer.sequences.augment import augment_array, augment_batch, mirror, stretch
from squeezer.sequences.dataset import SequenceBatch
from squeezer.sequences.recipe import AugmentConfig


def _batch() -> SequenceBatch:
    features = torch.randn(3, 10, 4)
    lengths = torch.tensor([10, 6, 3])
    for row, length in enumerate(lengths.tolist()):
        features[row, length:] = 0
    return SequenceBatch(ids=["a", "b", "c"], features=features, lengths=lengths, pair=None,
                         weights=torch.ones(3), labels=torch.tensor([0, 2, 1]))  # fmt: skip


def test_stretch_resamples_linearly_keeping_both_ends():
    x = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    y = stretch(x, 1.5)
    assert y.shape == (15, 2)
    np.testing.assert_allclose(y[[0, -1]], x[[0, -1]])
    np.testing.assert_allclose(y[:, 0], np.linspace(0, 9, 15), rtol=1e-6)
    assert stretch(x, 0.25).shape == (2, 2) and stretch(x[:1], 3.0).shape == (3, 2)


def test_mirror_reflects_only_the_named_columns():
    x = np.array([[0.2, 5.0, 0.9]], np.float32)
    np.testing.assert_allclose(mirror(x, (0, 2), 0.5), [[0.8, 5.0, 0.1]], rtol=1e-6)


def test_array_augmentation_is_decided_by_the_generator():
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    config = AugmentConfig(stretch=(0.5, 1.5), mirror_columns=(0,), mirror_prob=0.5)
    one = augment_array(x, config, np.random.default_rng([1, 2, 3]))
    two = augment_array(x, config, np.random.default_rng([1, 2, 3]))
    np.testing.assert_array_equal(one, two)


def test_batch_augmentation_keeps_padding_zero_and_is_seeded():
    batch = _batch()
    config = AugmentConfig(time_masks=2, time_mask_fraction=0.5, feature_masks=1,
                           feature_mask_width=2, noise_std=0.5)  # fmt: skip
    one = augment_batch(batch, config, torch.Generator().manual_seed(3))
    two = augment_batch(batch, config, torch.Generator().manual_seed(3))
    torch.testing.assert_close(one.features, two.features, rtol=0, atol=0)
    assert not torch.equal(one.features, batch.features)
    for row, length in enumerate(batch.lengths.tolist()):
        assert torch.all(one.features[row, length:] == 0)


def test_mixup_mixes_labels_into_distributions():
    out = augment_batch(_batch(), AugmentConfig(mixup_alpha=0.4), torch.Generator().manual_seed(0),
                        num_classes=3)  # fmt: skip
    assert out.labels.shape == (3, 3)
    torch.testing.assert_close(out.labels.sum(-1), torch.ones(3))
    assert torch.all(out.lengths >= _batch().lengths)
