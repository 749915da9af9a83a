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
from collections.abc import Sequence
from pathlib import Path

from squeezer.analysis.bench_rounds import Measurement, Spread, run_process

HERE = Path(__file__).resolve().parent


def measure(src: Path, preset: str, threads: int, round_: int) -> Measurement:
    """One fresh worker process importing squeezer from `src`: the benchmark's own runner puts
    its `peer_dir` first on the child's import path, ahead of this process's squeezer."""
    try:
        return run_process(round_, "squeezer", preset, 3, threads, peer_dir=src)
    except RuntimeError as error:
        raise SystemExit(f"{src}: {error}") from error


def spread(ratios: list[float]) -> str:
    s = Spread.of(ratios)
    return f"{s.median:.2f}x [{s.low:.2f}, {s.high:.2f}]"


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
    fields = ("train_wall", "train_cpu", "forward_wall")  # the table's columns
    ratios = {(preset, field): [] for preset in args.presets for field in fields}
    for round_index in range(args.rounds):
        for preset in args.presets:
            before = measure(args.before, preset, args.threads, round_index)
            after = measure(args.after, preset, args.threads, round_index)
            for field in fields:
                ratios[preset, field].append(getattr(before, field) / getattr(after, field))
            done = ", ".join(f"{field} {ratios[preset, field][-1]:.2f}" for field in fields)
            print(f"round {round_index + 1}: {preset} before/after {done}")
    print("\n| preset | fwd+bwd, wall | fwd+bwd, CPU time | fwd, wall |\n|---|---|---|---|")
    for preset in args.presets:
        cells = " | ".join(spread(ratios[preset, field]) for field in fields)
        print(f"| {preset} | {cells} |")


if __name__ == "__main__":
    main()
