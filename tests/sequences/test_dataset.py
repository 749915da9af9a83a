"""Sequence datasets and batches: standardised features, each task's answer, padding, labels
fixed by training, and batches by length under a budget of padded positions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from squeezer.sequences.dataset import (
    LabelMap,
    SequenceDataset,
    collate,
    length_batches,
)
from squeezer.sequences.manifest import read_sequences
from squeezer.sequences.normalize import FeatureStats
from squeezer.text import CharTokenizer
from tests.conftest import assert_one_line_error


@pytest.fixture
def folder(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for name, length in (("a", 5), ("b", 3), ("c", 4)):
        np.save(tmp_path / f"{name}.npy", rng.standard_normal((length, 2)) * 10 + 3)
        targets = rng.standard_normal((length, 2))
        targets[0, 1] = np.nan
        np.save(tmp_path / f"{name}_t.npy", targets)
        np.save(tmp_path / f"{name}_p.npy", rng.random((length, length)))
    return tmp_path


def manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_regression_batches_pad_features_with_zeros_and_targets_with_nan(folder):
    rows = [{"features": f"{n}.npy", "targets": f"{n}_t.npy", "pair": f"{n}_p.npy",
             "weight": w} for n, w in (("a", 1.0), ("b", 2.5))]  # fmt: skip
    records = read_sequences(manifest(folder, rows), "regress")
    stats = FeatureStats.fit(np.load(folder / f"{n}.npy") for n in ("a", "b"))
    batch = collate([SequenceDataset(records, "regress", stats)[i] for i in range(2)])
    assert batch.features.shape == (2, 5, 2) and batch.lengths.tolist() == [5, 3]
    assert torch.all(batch.features[1, 3:] == 0)
    raw = np.concatenate([np.load(folder / "a.npy"), np.load(folder / "b.npy")])
    standardised = torch.cat([batch.features[0], batch.features[1, :3]])
    # float32 standardisation of values ~10: ~1e-6
    np.testing.assert_allclose(standardised.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(standardised.numpy(), (raw - raw.mean(0)) / raw.std(0), atol=1e-5)
    assert batch.targets.shape == (2, 5, 2) and torch.isnan(batch.targets[1, 3:]).all()
    assert torch.isnan(batch.targets[0, 0, 1]) and not torch.isnan(batch.targets[0, 1]).any()
    assert batch.pair.shape == (2, 1, 5, 5) and torch.all(batch.pair[1, :, 3:] == 0)
    assert batch.weights.tolist() == [1.0, 2.5]


def test_classification_labels_are_fixed_by_training_and_soft_labels_mix_in(folder, tmp_path):
    rows = [{"features": "a.npy", "label": "walk"}, {"features": "b.npy", "label": "run"},
            {"features": "c.npy", "soft_label": [0.25, 0.75]}]  # fmt: skip
    records = read_sequences(manifest(folder, rows), "classify")
    labels = LabelMap.from_records(records[:2])
    assert labels.names == ["run", "walk"]
    dataset = SequenceDataset(records, "classify", labels=labels)
    assert collate([dataset[0], dataset[1]]).labels.tolist() == [1, 0]
    soft = collate([dataset[0], dataset[2]]).labels
    assert soft.tolist() == [[0.0, 1.0], [0.25, 0.75]]
    assert LabelMap.load(labels.save(tmp_path).parent).names == labels.names
    unseen = read_sequences(manifest(folder, [{"features": "a.npy", "label": "swim"}]), "classify")
    with pytest.raises(ValueError) as error:
        SequenceDataset(unseen, "classify", labels=labels)[0]
    assert_one_line_error(str(error.value), "m.jsonl:1", "'swim'", "not in training")


def test_ctc_batches_hold_padded_tokens(folder):
    rows = [{"features": "a.npy", "text": "abc"}, {"features": "b.npy", "text": "b"}]
    records = read_sequences(manifest(folder, rows), "ctc")
    tokenizer = CharTokenizer.from_texts(r.text for r in records)
    dataset = SequenceDataset(records, "ctc", tokenizer=tokenizer)
    batch = collate([dataset[0], dataset[1]])
    assert batch.token_lengths.tolist() == [3, 1]
    assert tokenizer.decode(batch.tokens[0].tolist()) == "abc"
    assert batch.tokens[1, 1:].tolist() == [0, 0] and batch.tokens.min() >= 0


def test_a_split_mixing_pair_and_no_pair_is_an_error(folder):
    rows = [{"features": "a.npy", "targets": "a_t.npy", "pair": "a_p.npy"},
            {"features": "b.npy", "targets": "b_t.npy"}]  # fmt: skip
    dataset = SequenceDataset(read_sequences(manifest(folder, rows), "regress"), "regress")
    with pytest.raises(ValueError, match="sequence 2 has no pair matrix"):
        collate([dataset[0], dataset[1]])


def test_length_batches_stay_under_the_budget_and_cover_every_index_once():
    rng = np.random.default_rng(1)
    lengths = [*rng.integers(1, 300, size=500).tolist(), 1000]
    for shuffle in (False, True):
        batches = length_batches(lengths, max_positions=2000, shuffle=shuffle, seed=3)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for batch in batches:
            longest = max(lengths[i] for i in batch)
            assert len(batch) == 1 or longest * len(batch) <= 2000
    assert length_batches(lengths, 2000, True, seed=3) == length_batches(lengths, 2000, True, 3)
    assert length_batches(lengths, 2000, True, seed=3) != length_batches(lengths, 2000, True, 4)
