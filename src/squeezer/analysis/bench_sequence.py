"""The encoder at a Kaggle shape, with and without an attention bias, against the PyPI peer.

Ribonanza's (RNA folding) Squeezeformers ran 12 blocks of width 192 with 4 heads and kernel 17
over sequences of up to 384 positions, no subsampling and no U-Net, adding one (B, H, T, T)
bias to every block's logits. This benchmark times that encoder's eval forward (no_grad) and
train forward + backward (mean square of the output) at batch 32 x 384, fp32, in a fresh
process per measurement, for three encoders in alternating order each round:

- `squeezer` without a bias, and with one shared random bias (`attn_bias`);
- the PyPI `squeezeformer` 1.0.0's `SqueezeformerBlock`s at the same width, depth, heads and
  kernel, called one after another on the same (B, T, D) input (its encoder always subsamples
  mel features 4x and halves the rate mid-network, and it takes no bias or mask).

    python -m squeezer.analysis.bench_sequence --rounds 5 --out docs/sequences.md

The report gives each encoder's median time and [min, max] over rounds, the bias's cost
(with / without, per round), and ours / peer per round.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from squeezer.analysis.bench import (
    DEFAULT_PEER_DIR,
    PEER_PACKAGE,
    PEER_VERSION,
    WORKER_TIMEOUT_S,
    ensure_peer,
    last_error_line,
    worker_env,
)
from squeezer.analysis.bench_peer import timed_runs
from squeezer.analysis.bench_rounds import Spread
from squeezer.cli.common import write_report_section

BATCH, FRAMES, WIDTH, BLOCKS, HEADS, KERNEL = 32, 384, 192, 12, 4, 17
ENCODERS = ("peer", "squeezer", "squeezer+bias")
SECTION = "ribonanza-shape"  # the report's markers in --out (write_report_section)


def build(encoder: str) -> tuple[nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The module and its forward (x (B, T, D), lengths (B,)) -> (B, T, D)."""
    if encoder == "peer":
        from squeezeformer.encoder import SqueezeformerBlock

        blocks = nn.Sequential(*[
            SqueezeformerBlock(encoder_dim=WIDTH, num_attention_heads=HEADS,
                               conv_kernel_size=KERNEL, half_step_residual=False)
            for _ in range(BLOCKS)
        ])  # fmt: skip
        return blocks, lambda x, lengths: blocks(x)
    from squeezer import EncoderConfig, SequenceEncoder

    config = EncoderConfig(
        input_dim=WIDTH, d_model=WIDTH, num_layers=BLOCKS, num_heads=HEADS,
        conv_kernel_size=KERNEL, subsampling="none", time_reduce_idx=None, time_recover_idx=None,
    )  # fmt: skip
    model = SequenceEncoder(config)
    if encoder == "squeezer":
        return model, lambda x, lengths: model(x, lengths).features
    bias = torch.randn(BATCH, HEADS, FRAMES, FRAMES, generator=torch.Generator().manual_seed(1))
    return model, lambda x, lengths: model(x, lengths, attn_bias=bias).features


def _nothing() -> None:
    """Nothing to reset between timed runs."""


def worker(encoder: str, repeats: int, threads: int) -> dict:
    """Time one encoder in this process: forward and forward + backward, wall seconds."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    module, forward = build(encoder)
    x = torch.randn(BATCH, FRAMES, WIDTH)
    lengths = torch.full((BATCH,), FRAMES)
    module.eval()
    with torch.no_grad():
        forward_s = timed_runs(lambda: forward(x, lengths), repeats, _nothing).wall_seconds
    module.train()

    def train_step() -> None:
        module.zero_grad(set_to_none=True)
        forward(x, lengths).square().mean().backward()

    train_s = timed_runs(train_step, repeats, _nothing).wall_seconds
    return {"encoder": encoder, "forward_s": min(forward_s), "train_s": min(train_s),
            "params": sum(p.numel() for p in module.parameters())}  # fmt: skip


def run_worker(encoder: str, repeats: int, threads: int, peer_dir: Path | None) -> dict:
    command = [sys.executable, "-m", "squeezer.analysis.bench_sequence", "--worker", encoder,
               "--repeats", str(repeats), "--threads", str(threads)]  # fmt: skip
    result = subprocess.run(command, env=worker_env(threads, peer_dir), capture_output=True,
                            text=True, check=False, timeout=WORKER_TIMEOUT_S)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"benchmark of {encoder} failed: {last_error_line(result.stderr)}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_rounds(rounds: int, repeats: int, threads: int, peer_dir: Path) -> list[list[dict]]:
    """Each round runs every encoder once, the order rotating from round to round."""
    peer_path = ensure_peer(peer_dir)
    measured = []
    for round_ in range(rounds):
        order = ENCODERS[round_ % 3 :] + ENCODERS[: round_ % 3]
        results = {}
        for encoder in order:
            path = peer_path if encoder == "peer" else None
            results[encoder] = run_worker(encoder, repeats, threads, path)
            timing = results[encoder]
            print(f"round {round_ + 1}/{rounds} {encoder}: forward {timing['forward_s']:.2f} s, "
                  f"train {timing['train_s']:.2f} s", file=sys.stderr, flush=True)  # fmt: skip
        measured.append([results[e] for e in ENCODERS])
    return measured


def markdown(measured: list[list[dict]], command: str, threads: int) -> str:
    def spread(values: Sequence[float]) -> str:
        s = Spread.of(values)
        return f"{s.median:.2f} [{s.low:.2f}, {s.high:.2f}]"

    lines = [
        f"`{command}` ({len(measured)} rounds, {threads} threads, batch {BATCH} x {FRAMES}, "
        f"width {WIDTH}, {BLOCKS} blocks, {HEADS} heads, kernel {KERNEL}, fp32; best of each "
        "process's timed runs; median [min, max] over rounds; ratios per round).", "",
        "| | forward s | forward + backward s | params |", "|---|---:|---:|---:|",
    ]  # fmt: skip
    names = {
        "peer": f"`{PEER_PACKAGE}` {PEER_VERSION} blocks (no mask, no bias)",
        "squeezer": "`squeezer`",
        "squeezer+bias": "`squeezer` with a shared `attn_bias`",
    }
    for index, encoder in enumerate(ENCODERS):
        rows = [round_[index] for round_ in measured]
        lines.append(
            f"| {names[encoder]} | {spread([r['forward_s'] for r in rows])} "
            f"| {spread([r['train_s'] for r in rows])} | {rows[0]['params']:,} |"
        )

    def ratio(top: int, bottom: int, key: str) -> str:
        return spread([r[top][key] / r[bottom][key] for r in measured])

    lines += [
        "", "| ratio, per round | forward | forward + backward |", "|---|---:|---:|",
        f"| bias cost: with / without | {ratio(2, 1, 'forward_s')} | {ratio(2, 1, 'train_s')} |",
        f"| speed-up: peer / squeezer | {ratio(0, 1, 'forward_s')} | {ratio(0, 1, 'train_s')} |",
        f"| speed-up: peer / squeezer with bias | {ratio(0, 2, 'forward_s')} "
        f"| {ratio(0, 2, 'train_s')} |",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer-dir", type=Path, default=DEFAULT_PEER_DIR)
    parser.add_argument("--out", type=Path, help="markdown file whose section to (re)write")
    parser.add_argument("--worker", choices=ENCODERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeats, args.threads)))
        return 0
    measured = run_rounds(args.rounds, args.repeats, args.threads, args.peer_dir)
    command = "python -m squeezer.analysis.bench_sequence " + " ".join(
        sys.argv[1:] if argv is None else argv)  # fmt: skip
    text = markdown(measured, command.strip(), args.threads)
    print(text)
    if args.out:
        write_report_section(args.out, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
