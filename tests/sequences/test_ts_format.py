"""The archives' .ts files: header, dimensions, missing values, labels, and errors with lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from squeezer.sequences.ts_format import read_ts, write_manifest

MULTIVARIATE = """# a comment
@problemName Toy
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
7,?:9,10:down
"""


def test_a_multivariate_file_reads_as_positions_by_dimensions(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(MULTIVARIATE)
    header, series = read_ts(path)
    assert header["problemname"] == "Toy"
    np.testing.assert_array_equal(series[0].values, [[1, 4], [2, 5], [3, 6]])
    assert series[0].label == "up" and series[1].label == "down"
    assert np.isnan(series[1].values[1, 0]) and series[1].values.shape == (2, 2)


def test_regression_targets_are_numbers(tmp_path):
    path = tmp_path / "r.ts"
    path.write_text("@targetlabel true\n@data\n1,2:3,4:0.5\n")
    _, series = read_ts(path)
    assert series[0].target == 0.5 and series[0].label is None


@pytest.mark.parametrize(
    ("data", "message"),
    [("1,2:3:up\n", "different lengths"), ("1,x:3,4:up\n", "not a number")],
)
def test_a_bad_line_is_named(tmp_path, data, message):
    path = tmp_path / "bad.ts"
    path.write_text("@classLabel true up\n@data\n" + data)
    with pytest.raises(ValueError, match=f"{path}:3: .*{message}"):
        read_ts(path)


def test_a_manifest_is_written_beside_the_arrays(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(MULTIVARIATE)
    manifest = write_manifest(path, tmp_path / "out", "train")
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [line["label"] for line in lines] == ["up", "down"]
    assert np.load(tmp_path / "out" / lines[0]["features"]).shape == (3, 2)
