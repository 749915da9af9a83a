"""Feature statistics: streamed fit equal to the whole split's, constant features, files."""

from __future__ import annotations

import numpy as np
import pytest

from squeezer.sequences.normalize import STATS_FILE, FeatureStats
from tests.conftest import assert_one_line_error


def test_a_streamed_fit_equals_the_statistics_of_the_whole_split():
    rng = np.random.default_rng(0)
    # an offset of 1e6 with unit spread: a naive float64 sum of squares loses ~6 digits
    offset = np.array([1e6, -5.0, 0.0])
    arrays = [rng.standard_normal((n, 3)) + offset for n in (1, 7, 300, 2)]
    stats = FeatureStats.fit(arrays)
    whole = np.concatenate(arrays)
    # Chan's merge in float64: relative error ~1e-15 x merges; 1e-9 leaves room
    np.testing.assert_allclose(stats.mean, whole.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, whole.std(axis=0), rtol=1e-9)
    assert stats.positions == 310
    standardised = np.concatenate([stats.apply(a) for a in arrays])
    np.testing.assert_allclose(standardised.mean(axis=0), 0, atol=1e-4)
    assert standardised.dtype == np.float32


def test_a_constant_feature_is_centred_not_blown_up():
    stats = FeatureStats.fit([np.array([[2.0, 1.0], [2.0, 3.0]])])
    assert stats.std == (1.0, 1.0)
    np.testing.assert_array_equal(stats.apply(np.array([[2.0, 2.0]])), [[0.0, 0.0]])


def test_statistics_round_trip_and_bad_files_are_one_line_errors(tmp_path):
    stats = FeatureStats.fit([np.arange(6.0).reshape(3, 2)])
    assert FeatureStats.load(stats.save(tmp_path).parent) == stats
    for text in ("{", '{"mean": [0], "std": [0], "positions": 1}', '{"mean": [1]}', "[]"):
        (tmp_path / STATS_FILE).write_text(text)
        with pytest.raises(ValueError) as error:
            FeatureStats.load(tmp_path)
        assert_one_line_error(str(error.value), STATS_FILE, "not feature statistics")
    with pytest.raises(ValueError, match="3 values per position, the statistics 2"):
        stats.apply(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="no positions"):
        FeatureStats.fit([])
