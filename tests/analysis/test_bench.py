"""The benchmark's shared pieces (never its timings: speed is measured by `make bench`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from squeezer.analysis import bench_peer
from squeezer.analysis.bench import last_error_line, worker_env


def test_batch_follows_the_protocol():
    x, lengths = bench_peer.make_batch()
    assert x.shape == (8, 1000, 80)
    assert lengths.tolist() == [1000, 800] * 4
    assert torch.all(x[1, 800:] == 0)
    assert sum(bench_peer.batch_lengths()) * bench_peer.FRAME_SHIFT_S == pytest.approx(72.0)


def test_the_peer_has_no_model_without_a_temporal_unet():
    with pytest.raises(ValueError, match="no Temporal U-Net"):
        bench_peer.peer_kwargs("conformer-s")


def test_a_child_sees_fixed_threads_and_the_peer_only_when_asked(tmp_path: Path):
    peer = worker_env(2, tmp_path / "peer")
    ours = worker_env(2, None)
    assert peer["OMP_NUM_THREADS"] == peer["MKL_NUM_THREADS"] == "2"
    assert peer["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "peer")
    assert str(tmp_path / "peer") not in ours["PYTHONPATH"].split(os.pathsep)


def test_the_error_line_of_a_child():
    assert last_error_line("noise\nERROR: no matching version\nmore\n") == (
        "ERROR: no matching version"
    )
    assert last_error_line("Traceback\n  ...\nValueError: bad\n") == "ValueError: bad"
    assert last_error_line("") == "no error output"
