"""Our encoder before and after a change, in alternating rounds of fresh processes (issue #18).

    git worktree add /tmp/before fd61b7b
    python tools/bench_before_after.py --before /tmp/before/src --rounds 5

Each round runs the benchmark's worker (`python -m squeezer.analysis.bench_peer
--implementation squeezer`, best of 3 per process) once with `--before` first on PYTHONPATH and
once with `--after` (default: this checkout's src), per preset. A round's ratio pairs its two
processes; the table gives before/after as median [min, max] over rounds, for train-mode
forward+backward (wall and CPU time) and eval-mode forward (wall).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
Seconds = tuple[float, float, float]  # forward wall, train wall, train CPU


def measure(src: Path, preset: str, threads: int) -> Seconds:
    """One fresh worker process importing squeezer from `src`."""
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    command = [sys.executable, "-m", "squeezer.analysis.bench_peer"]
    command += ["--implementation", "squeezer", "--preset", preset, "--threads", str(threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise SystemExit(f"worker for {src} ({preset}) failed: {lines[-1]}")
    result = json.loads(done.stdout.splitlines()[-1])
    return (
        min(result["forward_wall_seconds"]),
        min(result["train_wall_seconds"]),
        min(result["train_cpu_seconds"]),
    )


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="src folder of the old code")
    parser.add_argument("--after", type=Path, default=HERE.parent / "src")
    parser.add_argument("--presets", nargs="+", default=["squeezeformer-xs", "squeezeformer-sm"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    for src in (args.before, args.after):
        if not (src / "squeezer" / "__init__.py").is_file():
            parser.error(f"{src} has no squeezer package")
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds} must be at least 1")
    ratios: dict[str, list[Seconds]] = {preset: [] for preset in args.presets}
    for round_index in range(args.rounds):
        for preset in args.presets:
            before = measure(args.before, preset, args.threads)
            after = measure(args.after, preset, args.threads)
            ratios[preset].append(tuple(b / a for b, a in zip(before, after, strict=True)))
            print(f"round {round_index + 1}: {preset} before/after {ratios[preset][-1]}")
    print("\n| preset | fwd+bwd, wall | fwd+bwd, CPU time | fwd, wall |\n|---|---|---|---|")
    for preset, rows in ratios.items():
        forward, train, train_cpu = (list(column) for column in zip(*rows, strict=True))
        print(f"| {preset} | {spread(train)} | {spread(train_cpu)} | {spread(forward)} |")


if __name__ == "__main__":
    main()
