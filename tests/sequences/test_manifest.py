"""Sequence manifests: each task's fields, arrays checked against each other, one-line errors
naming the file and line for anything wrong, and fuzzed manifests and arrays."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from squeezer.sequences.manifest import load_arrays, read_sequences
from tests.conftest import assert_one_line_error, flip_bytes


def write_manifest(folder: Path, rows: list[dict], name: str = "train.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "seq").mkdir()
    np.save(tmp_path / "seq" / "a.npy", rng.standard_normal((7, 3)).astype(np.float32))
    np.save(tmp_path / "seq" / "b.npy", rng.standard_normal((4, 3)))  # float64 on disk
    targets = rng.standard_normal((7, 2))
    targets[2, 1] = np.nan
    np.save(tmp_path / "seq" / "a_targets.npy", targets)
    np.save(tmp_path / "seq" / "a_pair.npy", rng.random((7, 7)))
    return tmp_path


def test_each_task_reads_its_answer_and_paths_resolve_from_the_manifest(folder):
    ctc = read_sequences(write_manifest(folder, [{"features": "seq/a.npy", "text": "hi"}]), "ctc")
    assert ctc[0].text == "hi" and ctc[0].features == folder / "seq" / "a.npy"
    rows = [{"features": "seq/a.npy", "label": "walk", "weight": 2},
            {"features": "seq/b.npy", "soft_label": [0.25, 0.75], "id": "b"}]  # fmt: skip
    classify = read_sequences(write_manifest(folder, rows), "classify")
    assert classify[0].label == "walk" and classify[0].weight == 2.0 and classify[0].id == "1"
    assert classify[1].soft_label == (0.25, 0.75) and classify[1].id == "b"
    rows = [{"features": "seq/a.npy", "targets": "seq/a_targets.npy", "pair": "seq/a_pair.npy"}]
    record = read_sequences(write_manifest(folder, rows), "regress")[0]
    arrays = load_arrays(record, feature_dim=3)
    assert arrays.features.dtype == np.float32 and arrays.features.shape == (7, 3)
    assert arrays.targets.shape == (7, 2) and np.isnan(arrays.targets[2, 1])
    assert arrays.pair.shape == (1, 7, 7)


@pytest.mark.parametrize(
    ("row", "task", "names"),
    [
        ({"features": "seq/a.npy"}, "ctc", ["one of text"]),
        ({"features": "seq/a.npy", "label": "x", "soft_label": [0.5, 0.5]}, "classify",
         ["exactly one of label, soft_label"]),
        ({"features": "seq/missing.npy", "text": "x"}, "ctc", ["seq/missing.npy", "not exist"]),
        ({"features": "seq/a.txt", "text": "x"}, "ctc", [".npy"]),
        ({"text": "x"}, "ctc", ["no features"]),
        ({"features": "seq/a.npy", "text": 3}, "ctc", ["text must be a string"]),
        ({"features": "seq/a.npy", "text": "x", "weight": -1}, "ctc", ["weight", "-1"]),
        ({"features": "seq/a.npy", "text": "x", "weight": "heavy"}, "ctc", ["weight"]),
        ({"features": "seq/a.npy", "soft_label": [0.5, 0.6]}, "classify", ["sums to 1.1"]),
        ({"features": "seq/a.npy", "soft_label": [1.0]}, "classify", ["at least 2"]),
        ({"features": "seq/a.npy", "text": "x", "colour": 1}, "ctc", ["unknown key 'colour'"]),
        ({"features": [[1, 2], [3]], "text": "x"}, "ctc", ["rectangular"]),
    ],
)  # fmt: skip
def test_a_wrong_line_is_a_one_line_error_naming_file_and_line(folder, row, task, names):
    rows = [{"features": "seq/a.npy", "text": "ok", "label": "ok", "targets": "seq/a_targets.npy"}]
    good = {key: rows[0][key] for key in ("features", {"ctc": "text", "classify": "label",
                                                        "regress": "targets"}[task])}  # fmt: skip
    path = write_manifest(folder, [good, row])
    with pytest.raises(ValueError) as error:
        read_sequences(path, task)
    assert_one_line_error(str(error.value), "train.jsonl:2", *names)


@pytest.mark.parametrize(
    ("arrays", "names"),
    [
        ({"features": np.zeros((0, 3))}, ["features must be (T, F)", "(0, 3)"]),
        ({"features": np.zeros(5)}, ["features must be (T, F)"]),
        ({"features": np.array([[1.0, np.nan, 0]])}, ["NaN or inf"]),
        ({"features": np.array([[1e39, 0, 0]])}, ["NaN or inf"]),  # beyond float32
        ({"features": np.array([["a", "b", "c"]])}, ["must be numbers"]),
        ({"features": np.zeros((7, 4))}, ["4 values per position", "takes 3"]),
        ({"targets": np.zeros((6, 2))}, ["targets must be (7, K)", "(6, 2)"]),
        ({"targets": np.full((7, 1), np.inf)}, ["targets hold inf"]),
        ({"pair": np.zeros((6, 6))}, ["pair must be (7, 7)", "(1, 6, 6)"]),
        ({"pair": np.full((7, 7), np.nan)}, ["pair holds NaN"]),
    ],
)
def test_wrong_arrays_are_one_line_errors_naming_the_line(folder, arrays, names):
    row = {"features": "seq/a.npy", "targets": "seq/a_targets.npy"}
    for key, value in arrays.items():
        np.save(folder / "seq" / f"bad_{key}.npy", value)
        row[key] = f"seq/bad_{key}.npy"
    record = read_sequences(write_manifest(folder, [row]), "regress")[0]
    with pytest.raises(ValueError) as error:
        load_arrays(record, feature_dim=3)
    assert_one_line_error(str(error.value), "train.jsonl:1", *names)


def test_a_pickled_or_damaged_npy_is_refused_not_unpickled(folder):
    np.save(folder / "seq" / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "seq" / "cut.npy").write_bytes((folder / "seq" / "a.npy").read_bytes()[:100])
    for name in ("obj", "cut"):
        path = write_manifest(folder, [{"features": f"seq/{name}.npy", "text": "x"}])
        with pytest.raises(ValueError) as error:
            load_arrays(read_sequences(path, "ctc")[0])
        assert_one_line_error(str(error.value), "train.jsonl:1", f"{name}.npy")


def test_fuzzed_manifests_and_arrays_give_one_line_errors_or_records(folder):
    """Random byte flips: every outcome is records or a one-line ValueError, never a crash."""
    rng = random.Random(0)
    rows = [{"features": "seq/a.npy", "targets": "seq/a_targets.npy", "pair": "seq/a_pair.npy",
             "weight": 0.5}] * 3  # fmt: skip
    clean = write_manifest(folder, rows).read_bytes()
    arrays = {name: (folder / "seq" / name).read_bytes() for name in
              ("a.npy", "a_targets.npy", "a_pair.npy")}  # fmt: skip
    outcomes = {"records": 0, "errors": 0}
    for _ in range(300):
        (folder / "fuzz.jsonl").write_bytes(flip_bytes(clean, rng, flips=rng.randint(1, 4)))
        victim = rng.choice(list(arrays))
        (folder / "seq" / victim).write_bytes(flip_bytes(arrays[victim], rng, flips=3))
        try:
            for record in read_sequences(folder / "fuzz.jsonl", "regress"):
                load_arrays(record, feature_dim=3)
            outcomes["records"] += 1
        except (ValueError, FileNotFoundError) as error:
            assert_one_line_error(str(error), "fuzz.jsonl")
            outcomes["errors"] += 1
        (folder / "seq" / victim).write_bytes(arrays[victim])
    assert outcomes["records"] > 0 and outcomes["errors"] > 0, outcomes


def test_not_a_manifest(folder):
    with pytest.raises(FileNotFoundError, match="no such manifest"):
        read_sequences(folder / "none.jsonl", "ctc")
    with pytest.raises(ValueError, match=r"a \.jsonl or \.parquet"):
        read_sequences(folder / "seq" / "a.npy", "ctc")
    with pytest.raises(ValueError, match="no sequences"):
        read_sequences(write_manifest(folder, []), "ctc")
    with pytest.raises(ValueError, match="task='detect'"):
        read_sequences(write_manifest(folder, []), "detect")


def test_a_parquet_table_holds_the_same_fields_inline(folder):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    table = pa.table({
        "id": ["s1", "s2"],
        "features": [features.tolist(), features[:2].tolist()],
        "targets": [[[0.5], [None], [1.0], [2.0]], [[1.0], [2.0]]],
    })  # fmt: skip
    pq.write_table(table, folder / "train.parquet")
    records = read_sequences(folder / "train.parquet", "regress")
    arrays = load_arrays(records[0], feature_dim=3)
    assert records[0].id == "s1" and records[0].where.endswith("train.parquet:row 0")
    np.testing.assert_array_equal(arrays.features, features)
    assert np.isnan(arrays.targets[1, 0]) and arrays.targets.shape == (4, 1)
    with pytest.raises(ValueError) as error:  # the second row's targets are too short
        pq.write_table(pa.table({"features": [features.tolist()], "targets": [[[1.0]]]}),
                       folder / "bad.parquet")  # fmt: skip
        load_arrays(read_sequences(folder / "bad.parquet", "regress")[0])
    assert_one_line_error(str(error.value), "bad.parquet:row 0", "targets must be (4, K)")
    (folder / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError) as error:
        read_sequences(folder / "broken.parquet", "regress")
    assert_one_line_error(str(error.value), "broken.parquet", "not a readable Parquet table")
