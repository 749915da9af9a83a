"""The benchmark's bookkeeping (never its timings: speed is measured by `make bench`)."""

from __future__ import annotations

import pytest
import torch

from squeezer.analysis import bench_peer
from squeezer.analysis.bench import BenchRow, format_markdown, run_benchmark


def row(implementation: str, preset: str, fwd: float, train: float) -> BenchRow:
    return BenchRow(
        implementation=implementation,
        preset=preset,
        params=9_000_000,
        forward_audio_s_per_s=fwd,
        train_audio_s_per_s=train,
        output_frames=250,
        threads=2,
        repeats=3,
    )


def test_markdown_table_has_ratios_against_the_peer_and_the_command():
    rows = [
        row("squeezer", "squeezeformer-xs", 200.0, 50.0),
        row("squeezeformer", "squeezeformer-xs", 100.0, 40.0),
    ]
    text = format_markdown(rows, command="squeezer bench --rounds 3")
    assert "| 2.00x | 1.25x |" in text
    assert "`squeezer bench --rounds 3`" in text
    assert "squeezeformer-xs" in text and "72 s of audio" in text


def test_markdown_without_peer_has_no_ratios():
    text = format_markdown([row("squeezer", "squeezeformer-sm", 80.0, 20.0)], command="x")
    assert "| — | — |" in text


def test_batch_follows_the_protocol():
    x, lengths = bench_peer.make_batch()
    assert x.shape == (8, 1000, 80)
    assert lengths.tolist() == [1000, 800] * 4
    assert torch.all(x[1, 800:] == 0)
    assert sum(bench_peer.batch_lengths()) * bench_peer.FRAME_SHIFT_S == pytest.approx(72.0)


def test_bad_arguments_fail_before_any_timing():
    with pytest.raises(ValueError, match="squeezeformer-xxl"):
        run_benchmark(["squeezeformer-xxl"], include_peer=False)
    with pytest.raises(ValueError, match="no Temporal U-Net"):
        bench_peer.peer_kwargs("conformer-s")
    with pytest.raises(ValueError, match="rounds=0"):
        run_benchmark(["squeezeformer-xs"], rounds=0)
