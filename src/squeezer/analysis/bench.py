"""Encoder throughput: ours against the `squeezeformer` package from PyPI, in one run.

Each (implementation, preset) pair is timed in its own fresh process
(`squeezer.analysis.bench_peer`), ours and the peer alike, with the same thread count. The peer
is pip-installed into a throwaway folder that only its own process sees on PYTHONPATH, so it
never shadows anything in our environment. The protocol is the one of shared/MEASUREMENTS.md;
see `bench_peer` for it in code.

    rows = run_benchmark(["squeezeformer-xs", "squeezeformer-sm"])
    print(format_markdown(rows, command="squeezer bench --out docs/benchmarks.md"))
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

import squeezer
from squeezer.analysis import bench_peer
from squeezer.config import EncoderConfig

__all__ = [
    "PEER_PACKAGE",
    "PEER_VERSION",
    "BenchRow",
    "ensure_peer",
    "format_markdown",
    "run_benchmark",
]

PEER_PACKAGE = "squeezeformer"
PEER_VERSION = "1.0.0"
DEFAULT_PEER_DIR = Path(".bench/peer")  # relative to the working directory; git-ignored
WORKER_TIMEOUT_S = 1800  # SM fwd+bwd takes ~30 s on 2 cores; this only catches a hang

_LABELS = {
    "squeezer": "`squeezer` (ours)",
    "squeezeformer": f"`{PEER_PACKAGE}` {PEER_VERSION} (PyPI)",
}


@dataclass(frozen=True)
class BenchRow:
    """Throughput of one encoder at one preset, in seconds of audio per second of wall time."""

    implementation: str
    preset: str
    params: int
    forward_audio_s_per_s: float
    train_audio_s_per_s: float
    output_frames: int
    threads: int
    repeats: int
    rounds: int = 1


def ensure_peer(target_dir: Path) -> Path:
    """Install the peer into `target_dir` with `pip --target` unless it is there; return it."""
    target_dir = Path(target_dir).resolve()
    marker = target_dir / f"{PEER_PACKAGE}-{PEER_VERSION}.dist-info"
    if marker.is_dir() and (target_dir / PEER_PACKAGE / "__init__.py").is_file():
        return target_dir
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
        "--target", str(target_dir), f"{PEER_PACKAGE}=={PEER_VERSION}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not marker.is_dir():
        raise RuntimeError(
            f"could not install {PEER_PACKAGE}=={PEER_VERSION} into {target_dir} with pip "
            f"(no network?): {_last_error_line(result.stderr)}"
        )
    return target_dir


def _last_error_line(stderr: str) -> str:
    """The line of a child's stderr that says why it failed, for a one-line message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "no error output"


def run_benchmark(
    presets: list[str],
    repeats: int = 3,
    threads: int = 2,
    include_peer: bool = True,
    peer_dir: Path = DEFAULT_PEER_DIR,
    rounds: int = 1,
) -> list[BenchRow]:
    """Time our encoder (and the peer's at the same shape) for each preset, one process each.

    Args:
        presets: `EncoderConfig.preset` names; the peer mirrors only Squeezeformer presets.
        repeats: timed runs after the warm-up in each process; the best one counts.
        threads: `torch.set_num_threads` in every benchmark process.
        include_peer: also time the `squeezeformer` package, installing it when missing.
        peer_dir: the `pip --target` folder for the peer.
        rounds: fresh processes per (implementation, preset), alternating ours and the peer's;
            the best round counts. On a shared machine the speed drifts by tens of percent
            between processes, and alternating exposes both encoders to the same drift.

    Returns:
        One row per (preset, implementation), ours first within each preset.
    """
    if not presets:
        raise ValueError("presets is empty; name at least one, e.g. 'squeezeformer-xs'")
    if min(repeats, threads, rounds) < 1:
        raise ValueError(f"repeats={repeats}, threads={threads}, rounds={rounds} must be >= 1")
    for preset in presets:  # fail on a bad name before minutes of timing, not after
        EncoderConfig.preset(preset)
        if include_peer:
            bench_peer.peer_kwargs(preset)
    implementations: list[tuple[str, Path | None]] = [("squeezer", None)]
    if include_peer:
        implementations.append(("squeezeformer", ensure_peer(peer_dir)))
    best: dict[tuple[str, str], BenchRow] = {}
    for _ in range(rounds):
        for preset in presets:
            for implementation, path in implementations:
                row = _run_worker(implementation, preset, repeats, threads, path)
                best[(preset, implementation)] = _faster(best.get((preset, implementation)), row)
    return [replace(row, rounds=rounds) for row in best.values()]


def _faster(previous: BenchRow | None, current: BenchRow) -> BenchRow:
    """The better of two measurements of one encoder, each throughput taken at its best."""
    if previous is None:
        return current
    return replace(
        current,
        forward_audio_s_per_s=max(previous.forward_audio_s_per_s, current.forward_audio_s_per_s),
        train_audio_s_per_s=max(previous.train_audio_s_per_s, current.train_audio_s_per_s),
    )


def _worker_env(threads: int, peer_dir: Path | None) -> dict[str, str]:
    """The environment of a benchmark process: fixed thread counts, the right import path."""
    env = dict(os.environ)
    # OpenMP and MKL read these before torch starts, so the pools never grow past `threads`.
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    # The child must import the same `squeezer` as this process; only the peer's child also
    # sees the peer folder, which holds nothing but the `squeezeformer` package.
    ours = str(Path(squeezer.__file__).resolve().parents[1])
    paths = [str(peer_dir)] if peer_dir is not None else []
    paths += [ours, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _run_worker(
    implementation: str, preset: str, repeats: int, threads: int, peer_dir: Path | None
) -> BenchRow:
    """Time one encoder in a fresh `bench_peer` process and turn its result into a row."""
    command = [
        sys.executable, "-m", "squeezer.analysis.bench_peer", "--implementation", implementation,
        "--preset", preset, "--repeats", str(repeats), "--threads", str(threads),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        env=_worker_env(threads, peer_dir),
        capture_output=True,
        text=True,
        check=False,
        timeout=WORKER_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"benchmark of {implementation} at {preset} failed (exit {result.returncode}): "
            f"{_last_error_line(result.stderr)}"
        )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return BenchRow(
        implementation=implementation,
        preset=preset,
        params=measured["params"],
        forward_audio_s_per_s=measured["audio_seconds"] / measured["forward_seconds"],
        train_audio_s_per_s=measured["audio_seconds"] / measured["train_seconds"],
        output_frames=measured["output_frames"],
        threads=measured["threads"],
        repeats=measured["repeats"],
    )


def format_markdown(rows: Sequence[BenchRow], command: str) -> str:
    """A markdown section: protocol, results table with ours/peer ratios, machine, date, command."""
    if not rows:
        raise ValueError("no rows to format")
    header = (
        "| encoder | preset | params | output frames | fwd audio-s/s | fwd+bwd audio-s/s "
        "| fwd ours/peer | fwd+bwd ours/peer |"
    )
    lines = [
        "## Encoder throughput",
        "",
        _protocol_text(rows[0].repeats, rows[0].rounds),
        "",
        header,
        "|---|---|---|---|---|---|---|---|",
        *(_table_line(row, rows) for row in rows),
        "",
        f"- machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__}, {rows[0].threads} threads",
        f"- date: {datetime.now(timezone.utc).date().isoformat()}",
        f"- command: `{command}`",
        "",
    ]
    return "\n".join(lines)


def _protocol_text(repeats: int, rounds: int) -> str:
    lengths = bench_peer.batch_lengths()
    audio_s = sum(lengths) * bench_peer.FRAME_SHIFT_S
    processes = (
        "a fresh process per encoder"
        if rounds == 1
        else f"the fastest of {rounds} fresh processes per encoder, ours and the peer's alternating"
    )
    return (
        f"Batch of {len(lengths)} utterances of {bench_peer.FEATURE_DIM}-dim features at "
        f"{bench_peer.FRAME_SHIFT_S * 1000:.0f} ms per frame, alternately "
        f"{bench_peer.LONG_UTTERANCE_S:.0f} s and {bench_peer.SHORT_UTTERANCE_S:.0f} s long "
        f"({audio_s:.0f} s of audio, padded to {max(lengths)} frames), fp32 on CPU; best of "
        f"{repeats} timed runs after a warm-up, in {processes}. fwd: eval-mode forward under "
        "`torch.no_grad`; fwd+bwd: train-mode forward and backward of the mean square of the "
        "output. Throughput is seconds of audio per second of wall time."
    )


def _table_line(row: BenchRow, rows: Sequence[BenchRow]) -> str:
    peer = next(
        (r for r in rows if r.preset == row.preset and r.implementation == "squeezeformer"), None
    )
    if row.implementation == "squeezeformer" or peer is None:
        ratios = ["—", "—"]
    else:
        ratios = [
            f"{row.forward_audio_s_per_s / peer.forward_audio_s_per_s:.2f}x",
            f"{row.train_audio_s_per_s / peer.train_audio_s_per_s:.2f}x",
        ]
    cells = [
        _LABELS.get(row.implementation, row.implementation),
        row.preset,
        f"{row.params / 1e6:.2f} M",
        str(row.output_frames),
        f"{row.forward_audio_s_per_s:.1f}",
        f"{row.train_audio_s_per_s:.1f}",
        *ratios,
    ]
    return "| " + " | ".join(cells) + " |"


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
