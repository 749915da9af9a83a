"""The alternating-rounds benchmark's bookkeeping (never its timings: `make bench` measures)."""

from __future__ import annotations

import json

import pytest

from squeezer import cli
from squeezer.analysis import bench_peer, bench_rounds
from squeezer.analysis.bench_rounds import Measurement


def measurement(
    round_: int,
    implementation: str,
    forward_wall: float,
    train_wall: float,
    cpu_factor: float = 2.0,
    matmul: dict[str, float] | None = None,
    preset: str = "squeezeformer-xs",
) -> Measurement:
    """A fake process result; throughput is 72 audio seconds over these times."""
    return Measurement(
        round=round_,
        implementation=implementation,
        preset=preset,
        params=9_000_000,
        output_frames=250,
        lengths=(1000, 800) * 4,
        audio_seconds=72.0,
        forward_wall=forward_wall,
        forward_cpu=forward_wall * cpu_factor,
        train_wall=train_wall,
        train_cpu=train_wall * cpu_factor,
        threads=2,
        repeats=3,
        matmul_gflop_per_s=matmul or {},
    )


def test_rounds_alternate_peer_then_ours_per_preset():
    order = bench_rounds.schedule(["xs", "sm"], rounds=2, include_peer=True)
    assert order == [
        (0, "xs", "squeezeformer"),
        (0, "xs", "squeezer"),
        (0, "sm", "squeezeformer"),
        (0, "sm", "squeezer"),
        (1, "xs", "squeezeformer"),
        (1, "xs", "squeezer"),
        (1, "sm", "squeezeformer"),
        (1, "sm", "squeezer"),
    ]
    assert bench_rounds.schedule(["xs"], rounds=3, include_peer=False) == [
        (0, "xs", "squeezer"),
        (1, "xs", "squeezer"),
        (2, "xs", "squeezer"),
    ]


def test_ratios_pair_each_round_and_report_median_and_spread():
    # Peer forward 0.72 s (100 audio-s/s) every round; ours 0.36, 0.24, 0.48 s (2x, 3x, 1.5x).
    # Ours is charged 1.5x its wall time in CPU, the peer 2x: CPU ratios are 4/3 the wall ones.
    measurements = []
    for round_, ours_forward in enumerate([0.36, 0.24, 0.48]):
        measurements.append(measurement(round_, "squeezeformer", 0.72, 2.0, cpu_factor=2.0))
        measurements.append(measurement(round_, "squeezer", ours_forward, 1.0, cpu_factor=1.5))
    passes, peaks = bench_rounds.summarise(measurements)
    forward, train = passes
    assert (forward.preset, forward.pass_, train.pass_) == ("squeezeformer-xs", "forward", "train")
    assert forward.wall_ratio.values == pytest.approx((2.0, 3.0, 1.5))
    assert (forward.wall_ratio.median, forward.wall_ratio.low, forward.wall_ratio.high) == (
        pytest.approx(2.0),
        pytest.approx(1.5),
        pytest.approx(3.0),
    )
    assert forward.cpu_ratio.median == pytest.approx(2.0 * 4 / 3)
    assert forward.peer_wall.median == pytest.approx(100.0)
    assert forward.ours_wall.median == pytest.approx(200.0)
    assert forward.ours_cpu.median == pytest.approx(200.0 / 1.5)
    assert train.wall_ratio.median == pytest.approx(2.0)
    assert peaks == []  # no matmul timings, no peak figure
    text = bench_rounds.format_markdown((passes, peaks), measurements, command="squeezer bench")
    assert "| squeezeformer-xs | fwd | 100.0 | 200.0 | 2.00x [1.50, 3.00] |" in text
    assert "2.00 / 3.00 / 1.50" in text and "`squeezer bench`" in text
    assert "72 s of audio" in text and "3 rounds" in text


def test_forward_is_a_fraction_of_the_fastest_matmul_of_the_same_round():
    gflop = bench_rounds.encoder_gflop("squeezeformer-xs", (1000, 800) * 4)
    assert gflop == pytest.approx(8 * 4.508, rel=1e-3)  # each utterance at the padded 1000
    # Forward at gflop / (gflop / 100) = 100 GFLOP/s against peaks of 200 and 400 GFLOP/s.
    measurements = [
        measurement(0, "squeezer", gflop / 100, 1.0, matmul={"ff": 200.0, "scores": 50.0}),
        measurement(1, "squeezer", gflop / 100, 1.0, matmul={"ff": 400.0, "scores": 60.0}),
    ]
    passes, (peak,) = bench_rounds.summarise(measurements)
    assert passes[0].wall_ratio is None and passes[0].peer_wall is None
    assert peak.forward_gflop_per_s.median == pytest.approx(100.0)
    assert peak.fraction.values == pytest.approx((0.5, 0.25))
    assert peak.shapes["scores"].median == pytest.approx(55.0)
    text = bench_rounds.format_markdown((passes, [peak]), measurements, command="x")
    assert "38% [25%, 50%]" in text and "| — |" in text


def test_a_fresh_process_prints_wall_and_cpu_times_and_matmul_rates():
    measured = bench_rounds.run_process(
        3, "squeezer", "squeezeformer-xs", repeats=1, threads=1, peer_dir=None,
        extra_args=["--batch-size", "2", "--seconds", "0.3"],
    )  # fmt: skip
    assert (measured.round, measured.implementation, measured.threads) == (3, "squeezer", 1)
    assert measured.lengths == (30, 24)
    assert measured.audio_seconds == pytest.approx(0.54)
    assert min(measured.forward_wall, measured.train_wall) > 0
    assert min(measured.forward_cpu, measured.train_cpu) > 0
    assert len(measured.matmul_gflop_per_s) == 5
    assert all(rate > 0 for rate in measured.matmul_gflop_per_s.values())


def test_worker_json_lists_every_repeat(capsys):
    bench_peer.main(
        ["--implementation", "squeezer", "--preset", "squeezeformer-xs", "--repeats", "2",
         "--threads", "1", "--batch-size", "1", "--seconds", "0.2"]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("forward", "train"):
        assert len(result[f"{key}_wall_seconds"]) == len(result[f"{key}_cpu_seconds"]) == 2
        assert result[f"{key}_seconds"] == min(result[f"{key}_wall_seconds"])
    assert result["matmul"][0]["m"] == result["output_frames"]  # B T' with B = 1
    assert bench_rounds.parse_worker_output(json.dumps(result), 0).repeats == 2


def test_bad_options_fail_in_one_line_before_any_timing(capsys):
    with pytest.raises(ValueError, match="rounds=0"):
        bench_rounds.run_rounds(["squeezeformer-xs"], rounds=0)
    with pytest.raises(ValueError, match="squeezeformer-xxl"):
        bench_rounds.run_rounds(["squeezeformer-xxl"], include_peer=False)
    with pytest.raises(ValueError, match="no Temporal U-Net"):
        bench_rounds.run_rounds(["conformer-s"])
    with pytest.raises(ValueError, match="must be positive"):
        bench_peer.batch_lengths(0)
    assert cli.main(["bench", "--rounds", "0", "--no-peer"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "rounds=0" in error
