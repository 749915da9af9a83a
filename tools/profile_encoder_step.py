"""Where one encoder forward+backward spends its CPU time: a table of ATen ops (issue #18).

    python tools/profile_encoder_step.py --preset squeezeformer-xs --threads 2

The batch is `make bench`'s (8 utterances of 10 s and 8 s, fp32); the step is train-mode
forward plus backward of the mean square of the output, as the benchmark times it. After two
warm-up steps, `torch.profiler` records `--steps` steps; the table gives each op's share of
the self CPU time and its calls per step, and the GEMM line sums the matmuls and
convolutions: the rest is what memory traffic, masks and bookkeeping cost. Profiles are
wall-clock: on a shared machine run it when the machine is otherwise idle.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch.profiler import ProfilerActivity, profile

from squeezer.analysis.bench_peer import build_squeezer, make_batch

GEMM_OPS = (
    "aten::mm",
    "aten::bmm",
    "aten::addmm",
    "aten::baddbmm",
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
)


def profile_step(preset: str, steps: int) -> tuple[list[tuple[str, float, int]], float]:
    """(op, self CPU ms per step, calls per step) rows, largest first, and ms per step."""
    encoder, forward = build_squeezer(preset)
    x, lengths = make_batch()
    encoder.train()

    def step() -> None:
        encoder.zero_grad(set_to_none=True)
        forward(x, lengths).pow(2).mean().backward()

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    rows = [(e.key, e.self_cpu_time_total / 1e3 / steps, e.count // steps) for e in events]
    rows.sort(key=lambda row: -row[1])
    return rows, sum(row[1] for row in rows)


def markdown(preset: str, rows: list[tuple[str, float, int]], total: float, top: int) -> str:
    """The table: op, share of the step, calls per step; GEMMs summed on the last line."""
    lines = [
        f"{preset} forward+backward: {total:.0f} ms of ATen self time per step",
        "",
        "| op | share | calls per step |",
        "|---|---:|---:|",
    ]
    for op, ms, calls in rows[:top]:
        lines.append(f"| `{op}` | {100 * ms / total:.1f} % | {calls} |")
    gemm = sum(ms for op, ms, _ in rows if op in GEMM_OPS)
    lines.append(f"| matmuls and convolutions together | {100 * gemm / total:.1f} % | |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="squeezeformer-xs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="table rows")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error(f"--steps {args.steps} and --threads {args.threads} must be at least 1")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rows, total = profile_step(args.preset, args.steps)
    print(markdown(args.preset, rows, total, args.top))


if __name__ == "__main__":
    main()
