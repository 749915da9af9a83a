"""Encoder throughput against the PyPI `squeezeformer` peer, robust to a noisy shared host.

One process's speed on a shared VM is not a measurement: neighbours steal time, and the same
comparison has moved from 1.46x to 2.61x between runs. So each measurement is a fresh
`squeezer.analysis.bench_peer` process, the encoders alternate process by process (round 1:
peer, ours; round 2: peer, ours; ...), and the report gives, per preset and pass, the median
ours/peer ratio over the rounds with its [min, max], once on wall time and once on process CPU
time (user + system of all threads: time stolen by neighbours is not charged to a process, so
it moves far less). Our process also times fp32 matmuls of the encoder's own sizes, and the
forward's analytic FLOPs per second are reported as a fraction of that matmul peak: a figure
that holds on any CPU.

    measurements = run_rounds(["squeezeformer-xs"], rounds=5)
    print(format_markdown(summarise(measurements), command="squeezer bench --rounds 5"))
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import torch

from squeezer.analysis import bench_peer
from squeezer.analysis.bench import (
    DEFAULT_PEER_DIR,
    PEER_PACKAGE,
    PEER_VERSION,
    WORKER_TIMEOUT_S,
    cpu_model,
    ensure_peer,
    last_error_line,
    worker_env,
)
from squeezer.analysis.flops import analytic_flops
from squeezer.config import EncoderConfig

__all__ = [
    "Measurement",
    "PassSummary",
    "PeakSummary",
    "Spread",
    "format_markdown",
    "parse_worker_output",
    "run_rounds",
    "schedule",
    "summarise",
]

OURS, PEER = "squeezer", "squeezeformer"
Pass = Literal["forward", "train"]
Clock = Literal["wall", "cpu"]
PASSES: tuple[Pass, ...] = ("forward", "train")
_PASS_LABELS = {"forward": "fwd", "train": "fwd+bwd"}


@dataclass(frozen=True)
class Measurement:
    """One fresh process's timings of one encoder: the fastest of its repeats, per clock."""

    round: int
    implementation: str
    preset: str
    params: int
    output_frames: int
    lengths: tuple[int, ...]
    audio_seconds: float
    forward_wall: float
    forward_cpu: float
    train_wall: float
    train_cpu: float
    threads: int
    repeats: int
    matmul_gflop_per_s: dict[str, float]  # shape name -> fp32 GFLOP/s; ours only

    def throughput(self, pass_: Pass, clock: Clock) -> float:
        """Seconds of audio per second of wall time, or per second of process CPU time."""
        return self.audio_seconds / getattr(self, f"{pass_}_{clock}")


@dataclass(frozen=True)
class Spread:
    """The median of values measured over rounds, with their minimum and maximum."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values to summarise")
        return cls(statistics.median(values), min(values), max(values), tuple(values))


@dataclass(frozen=True)
class PassSummary:
    """One preset and pass over all rounds: each side's throughput and ours/peer per round."""

    preset: str
    pass_: Pass
    ours_wall: Spread
    ours_cpu: Spread
    peer_wall: Spread | None
    peer_cpu: Spread | None
    wall_ratio: Spread | None
    cpu_ratio: Spread | None


@dataclass(frozen=True)
class PeakSummary:
    """Our forward's achieved GFLOP/s against the same run's fp32 matmul peak, per round."""

    preset: str
    encoder_gflop: float  # analytic matmul + conv FLOPs of one forward of the padded batch
    forward_gflop_per_s: Spread
    matmul_gflop_per_s: Spread  # the fastest of the encoder's matmul shapes, per round
    fraction: Spread  # forward / matmul, per round
    shapes: dict[str, Spread]  # every shape's GFLOP/s over rounds


def schedule(presets: Sequence[str], rounds: int, include_peer: bool) -> list[tuple[int, str, str]]:
    """(round, preset, implementation) in run order: per round and preset, the peer, then ours."""
    implementations = [PEER, OURS] if include_peer else [OURS]
    return [
        (round_, preset, implementation)
        for round_ in range(rounds)
        for preset in presets
        for implementation in implementations
    ]


def _check_options(presets: Sequence[str], rounds: int, repeats: int, threads: int) -> None:
    if not presets:
        raise ValueError("presets is empty; name at least one, e.g. 'squeezeformer-xs'")
    if min(repeats, threads, rounds) < 1:
        raise ValueError(f"rounds={rounds}, repeats={repeats}, threads={threads} must be >= 1")


def run_rounds(
    presets: Sequence[str],
    rounds: int = 5,
    repeats: int = 3,
    threads: int = 2,
    include_peer: bool = True,
    peer_dir: Path = DEFAULT_PEER_DIR,
    progress: Callable[[str], None] | None = None,
) -> list[Measurement]:
    """Time ours (and the peer at the same shape) in `rounds` alternating rounds of processes.

    Args:
        presets: `EncoderConfig.preset` names; the peer mirrors only Squeezeformer presets.
        rounds: rounds of fresh processes; each round runs, per preset, the peer, then ours.
        repeats: timed runs after the warm-up in each process; the fastest counts.
        threads: `torch.set_num_threads` (and OMP/MKL threads) in every process.
        include_peer: also time the `squeezeformer` package, installing it when missing.
        peer_dir: the `pip --target` folder for the peer.
        progress: called with one line per finished process.

    Returns:
        One `Measurement` per process, in run order.
    """
    _check_options(presets, rounds, repeats, threads)
    for preset in presets:  # fail on a bad name before minutes of timing, not after
        EncoderConfig.preset(preset)
        if include_peer:
            bench_peer.peer_kwargs(preset)
    peer_path = ensure_peer(peer_dir) if include_peer else None
    measurements = []
    for round_, preset, implementation in schedule(presets, rounds, include_peer):
        path = peer_path if implementation == PEER else None
        measurement = run_process(round_, implementation, preset, repeats, threads, path)
        measurements.append(measurement)
        if progress is not None:
            progress(
                f"round {round_ + 1}/{rounds} {preset} {implementation}: "
                f"fwd {measurement.throughput('forward', 'wall'):.1f}, "
                f"fwd+bwd {measurement.throughput('train', 'wall'):.1f} audio-s/s"
            )
    return measurements


def run_process(
    round_: int,
    implementation: str,
    preset: str,
    repeats: int,
    threads: int,
    peer_dir: Path | None,
    extra_args: Sequence[str] = (),
) -> Measurement:
    """Time one encoder in a fresh `bench_peer` process; `extra_args` go to its command line."""
    command = [
        sys.executable, "-m", "squeezer.analysis.bench_peer", "--implementation", implementation,
        "--preset", preset, "--repeats", str(repeats), "--threads", str(threads), *extra_args,
    ]  # fmt: skip
    result = subprocess.run(
        command,
        env=worker_env(threads, peer_dir),
        capture_output=True,
        text=True,
        check=False,
        timeout=WORKER_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"benchmark of {implementation} at {preset} failed (exit {result.returncode}): "
            f"{last_error_line(result.stderr)}"
        )
    return parse_worker_output(result.stdout, round_)


def parse_worker_output(stdout: str, round_: int) -> Measurement:
    """The `Measurement` in the last line of a `bench_peer` process's stdout."""
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError("the benchmark process printed nothing")
    measured = json.loads(lines[-1])
    return Measurement(
        round=round_,
        implementation=measured["implementation"],
        preset=measured["preset"],
        params=measured["params"],
        output_frames=measured["output_frames"],
        lengths=tuple(measured["lengths"]),
        audio_seconds=measured["audio_seconds"],
        forward_wall=min(measured["forward_wall_seconds"]),
        forward_cpu=min(measured["forward_cpu_seconds"]),
        train_wall=min(measured["train_wall_seconds"]),
        train_cpu=min(measured["train_cpu_seconds"]),
        threads=measured["threads"],
        repeats=measured["repeats"],
        matmul_gflop_per_s={rate["name"]: rate["gflop_per_s"] for rate in measured["matmul"]},
    )


def encoder_gflop(preset: str, lengths: Sequence[int]) -> float:
    """Analytic matmul + conv GFLOP of one encoder forward on the batch as padded.

    Every utterance is computed at the padded length, as the kernels compute it; the CTC head
    and the elementwise estimate are left out (a FLOP counter's count of the encoder).
    """
    flops = analytic_flops(EncoderConfig.preset(preset), max(lengths))
    return len(lengths) * (flops.matmul_total - flops.components["ctc_head"]) / 1e9


def summarise(measurements: Sequence[Measurement]) -> tuple[list[PassSummary], list[PeakSummary]]:
    """Per preset and pass, medians and spreads over rounds; per preset, the matmul-peak figure.

    A round's ratio pairs the two processes of that round and preset, so both sides of a ratio
    ran back to back under the same neighbours.
    """
    if not measurements:
        raise ValueError("no measurements to summarise")
    by_key = {(m.round, m.preset, m.implementation): m for m in measurements}
    presets = list(dict.fromkeys(m.preset for m in measurements))
    passes, peaks = [], []
    for preset in presets:
        ours = [m for m in measurements if m.preset == preset and m.implementation == OURS]
        pairs = [(m, by_key.get((m.round, preset, PEER))) for m in ours]
        pairs = [(mine, peer) for mine, peer in pairs if peer is not None]
        peers = [peer for _, peer in pairs]
        for pass_ in PASSES:
            passes.append(
                PassSummary(
                    preset=preset,
                    pass_=pass_,
                    ours_wall=_side(ours, pass_, "wall"),
                    ours_cpu=_side(ours, pass_, "cpu"),
                    peer_wall=_side(peers, pass_, "wall"),
                    peer_cpu=_side(peers, pass_, "cpu"),
                    wall_ratio=_ratio(pairs, pass_, "wall"),
                    cpu_ratio=_ratio(pairs, pass_, "cpu"),
                )
            )
        with_matmul = [m for m in ours if m.matmul_gflop_per_s]
        if with_matmul:
            gflop = encoder_gflop(preset, with_matmul[0].lengths)
            forward = [gflop / m.forward_wall for m in with_matmul]
            peak = [max(m.matmul_gflop_per_s.values()) for m in with_matmul]
            names = list(with_matmul[0].matmul_gflop_per_s)
            peaks.append(
                PeakSummary(
                    preset=preset,
                    encoder_gflop=gflop,
                    forward_gflop_per_s=Spread.of(forward),
                    matmul_gflop_per_s=Spread.of(peak),
                    fraction=Spread.of([f / p for f, p in zip(forward, peak, strict=True)]),
                    shapes={
                        n: Spread.of([m.matmul_gflop_per_s[n] for m in with_matmul]) for n in names
                    },
                )
            )
    return passes, peaks


def _side(measurements: Sequence[Measurement], pass_: Pass, clock: Clock) -> Spread | None:
    """One encoder's throughput over rounds; None when it was not measured."""
    values = [m.throughput(pass_, clock) for m in measurements]
    return Spread.of(values) if values else None


def _ratio(
    pairs: Sequence[tuple[Measurement, Measurement]], pass_: Pass, clock: Clock
) -> Spread | None:
    """Ours over the peer's throughput, round by round; None without the peer."""
    values = [ours.throughput(pass_, clock) / peer.throughput(pass_, clock) for ours, peer in pairs]
    return Spread.of(values) if values else None


def format_markdown(
    summary: tuple[Sequence[PassSummary], Sequence[PeakSummary]],
    measurements: Sequence[Measurement],
    command: str,
) -> str:
    """A markdown section: protocol, ratio table, per-round ratios, matmul peak, machine, date."""
    passes, peaks = summary
    if not passes or not measurements:
        raise ValueError("no results to format")
    first = measurements[0]
    rounds = len({m.round for m in measurements})
    params = {
        (m.preset, m.implementation): m.params for m in measurements
    }  # the same in every round
    lines = [
        "## Encoder throughput",
        "",
        _protocol_text(first, rounds),
        "",
        "| preset | pass | peer audio-s/s | ours audio-s/s | ours/peer, wall: median [min, max] "
        "| peer audio-s/CPU-s | ours audio-s/CPU-s | ours/peer, CPU time: median [min, max] |",
        "|---|---|---|---|---|---|---|---|",
        *(_pass_line(summary_line) for summary_line in passes),
        "",
        "Ratios per round (wall; CPU time):",
        "",
        *(
            f"- {p.preset} {_PASS_LABELS[p.pass_]}: "
            f"{_round_values(p.wall_ratio)}; {_round_values(p.cpu_ratio)}"
            for p in passes
            if p.wall_ratio is not None and p.cpu_ratio is not None
        ),
        "",
        "Parameters: "
        + ", ".join(
            f"{preset} {_label(implementation)} {count / 1e6:.2f} M"
            for (preset, implementation), count in params.items()
        )
        + ".",
        "",
    ]
    if peaks:
        lines += [
            "### Forward against the matmul peak",
            "",
            "In each of our processes, right after the forward is timed, fp32 matmuls of the "
            "encoder's own sizes (T' = output frames, at the full frame rate) are timed "
            "(`torch.mm` / `torch.bmm` into a preallocated output, the fastest of "
            f"{bench_peer.MATMUL_RUNS} runs of about {bench_peer.MATMUL_MIN_SECONDS * 1000:.0f}"
            " ms); the fastest shape is the matmul peak of that run. The forward's rate is the "
            "encoder's analytic matmul and convolution FLOPs (`squeezer.analysis.flops`, CTC "
            "head and elementwise work left out) on the padded batch, over the forward's "
            "fastest wall time. The fraction is taken per round; median [min, max] over rounds.",
            "",
            "| preset | GFLOP per forward | forward GFLOP/s | matmul peak GFLOP/s "
            "| fraction of matmul peak |",
            "|---|---|---|---|---|",
            *(
                f"| {peak.preset} | {peak.encoder_gflop:.1f} | "
                f"{peak.forward_gflop_per_s.median:.0f} | {peak.matmul_gflop_per_s.median:.0f} | "
                f"{_spread(peak.fraction, percent=True)} |"
                for peak in peaks
            ),
            "",
            "Matmul GFLOP/s by shape (median over rounds):",
            "",
            *(
                f"- {peak.preset}: "
                + "; ".join(f"{name} {rate.median:.0f}" for name, rate in peak.shapes.items())
                for peak in peaks
            ),
            "",
        ]
    lines += [
        f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__}, {first.threads} threads",
        f"- date: {datetime.now(timezone.utc).date().isoformat()}",
        f"- command: `{command}`",
        "",
    ]
    return "\n".join(lines)


def _label(implementation: str) -> str:
    return {OURS: "`squeezer`", PEER: f"`{PEER_PACKAGE}` {PEER_VERSION}"}.get(
        implementation, implementation
    )


def _protocol_text(first: Measurement, rounds: int) -> str:
    lengths = first.lengths
    seconds = sorted({length * bench_peer.FRAME_SHIFT_S for length in lengths}, reverse=True)
    return (
        f"Batch of {len(lengths)} utterances of {bench_peer.FEATURE_DIM}-dim features at "
        f"{bench_peer.FRAME_SHIFT_S * 1000:.0f} ms per frame, alternately "
        + " and ".join(f"{s:g} s" for s in seconds)
        + f" long ({first.audio_seconds:g} s of audio, padded to {max(lengths)} frames), fp32 "
        f"on CPU, {first.threads} threads. Every measurement is a fresh process that builds one "
        f"encoder, warms up and keeps the fastest of {first.repeats} timed runs; {rounds} rounds, "
        f"each running, per preset, `{PEER_PACKAGE}` {PEER_VERSION} (PyPI), then `squeezer`. "
        "A round's ratio pairs its two processes; the table gives each side's median "
        "throughput and the median ratio with its [min, max] over rounds. fwd: eval-mode forward "
        "under `torch.no_grad`; fwd+bwd: train-mode forward and backward of the mean square of "
        "the output. audio-s/s is seconds of audio per second of wall time; audio-s/CPU-s per "
        "second of CPU time charged to the process (user + system, all threads), which leaves "
        "out time stolen by other tenants of a shared host."
    )


def _spread(spread: Spread | None, percent: bool = False) -> str:
    if spread is None:
        return "—"
    if percent:
        return f"{spread.median:.0%} [{spread.low:.0%}, {spread.high:.0%}]"
    return f"{spread.median:.2f}x [{spread.low:.2f}, {spread.high:.2f}]"


def _round_values(spread: Spread | None) -> str:
    return " / ".join(f"{value:.2f}" for value in spread.values) if spread else "—"


def _pass_line(p: PassSummary) -> str:
    def rate(spread: Spread | None) -> str:
        return f"{spread.median:.1f}" if spread is not None else "—"

    cells = [
        p.preset,
        _PASS_LABELS[p.pass_],
        rate(p.peer_wall),
        rate(p.ours_wall),
        _spread(p.wall_ratio),
        rate(p.peer_cpu),
        rate(p.ours_cpu),
        _spread(p.cpu_ratio),
    ]
    return "| " + " | ".join(cells) + " |"
