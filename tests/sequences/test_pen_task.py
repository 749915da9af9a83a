"""The generated pen-trajectory task: deterministic, writers with their own hands, files that
the sequence manifests read."""

from __future__ import annotations

import numpy as np

from squeezer.sequences.manifest import load_arrays, read_sequences
from squeezer.sequences.pen_task import ALPHABET, FEATURES, Writer, draw_text, write_split


def test_a_trajectory_has_a_pen_down_stroke_per_letter():
    x = draw_text("ab cd", Writer.from_id(1), np.random.default_rng(0))
    assert x.shape[1] == FEATURES and np.isfinite(x).all()
    assert int((x[:, 4] == 0).sum()) == 4  # the pen comes down once per letter
    np.testing.assert_allclose(x[1:, 2:4], np.diff(x[:, :2], axis=0), rtol=1e-5, atol=1e-6)


def test_writers_differ_and_a_seed_repeats_itself():
    a = draw_text("abc", Writer.from_id(1), np.random.default_rng(0))
    b = draw_text("abc", Writer.from_id(1), np.random.default_rng(0))
    c = draw_text("abc", Writer.from_id(2), np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c)


def test_a_split_is_a_ctc_manifest(tmp_path):
    manifest = write_split(tmp_path, "dev", 6, range(100, 103), seed=1)
    records = read_sequences(manifest, "ctc")
    assert len(records) == 6
    assert all(set(r.text) <= set(ALPHABET + " ") for r in records)
    assert load_arrays(records[0]).features.shape[1] == FEATURES
    assert {r.id.split("-w")[1] for r in records} == {"100", "101", "102"}
