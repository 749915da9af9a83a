"""Does `attn_bias` work, and do the positional schemes carry past the training length?

Trains a small `SequenceEncoder` + `PositionHead` on the known-answer pair task
(`squeezer.sequences.pair_task`) for each variant below, on lengths 20-200, and reports the
per-position MAE of both targets on fresh sequences of the training lengths and of 200-450.

    python tools/pair_task_experiment.py --steps 600 --out docs/sequences/pair_task.json
    python tools/pair_task_experiment.py --steps 600 --offset 40 --without-pair \
        --out docs/sequences/pair_task_offset40.json

Target 1 reads the features `--offset` positions back: 3 lies within the convolutions'
reach (kernel 17, 4 blocks: 32 positions), 40 beyond it, where only attention that knows
relative positions can find it.

Variants: the paper's relative positions without the pair matrix (the control: target 0
should stay near the MAE of predicting 0), then every positional scheme with
`PairBias(pair)` as `attn_bias`. Data are drawn fresh every step (no epoch, no overfitting);
the evaluation sets come from their own seeds. One seed per variant.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from squeezer import EncoderConfig, PairBias, SequenceEncoder
from squeezer.nn import PositionHead, position_regression_loss
from squeezer.sequences.pair_task import FEATURE_DIM, PairTaskBatch, pair_task_batch

TRAIN_LENGTHS = (20, 200)
LONG_LENGTHS = (200, 450)
VARIANTS = [("relative", False), ("relative", True), ("rope", True), ("alibi", True),
            ("absolute", True), ("none", True)]  # fmt: skip


class PairModel(nn.Module):
    """PairBias (optional) -> SequenceEncoder -> PositionHead (2 targets)."""

    def __init__(self, position: str, use_pair: bool) -> None:
        super().__init__()
        config = EncoderConfig(
            input_dim=FEATURE_DIM, d_model=64, num_layers=4, num_heads=4, conv_kernel_size=17,
            subsampling="none", time_reduce_idx=None, time_recover_idx=None, position=position,
        )  # fmt: skip
        self.pair_bias = (
            PairBias(1, config.num_heads, hidden=16, kernel_size=7) if use_pair else None
        )
        self.encoder = SequenceEncoder(config)
        self.head = PositionHead(config.d_model, 2)

    def forward(self, batch: PairTaskBatch) -> torch.Tensor:
        bias = None
        if self.pair_bias is not None:
            bias = self.pair_bias(batch.pair, batch.lengths)  # (B, H, T, T)
        features, lengths = self.encoder(batch.features, batch.lengths, attn_bias=bias)
        return self.head(features, lengths)  # (B, T, 2)


def mae(predict, batches: list[PairTaskBatch]) -> dict[str, float]:
    """MAE per target of `predict(batch) -> (B, T, 2)` over the known targets of every batch."""
    sums, counts = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for batch in batches:
            known = ~torch.isnan(batch.targets)
            error = (predict(batch) - torch.nan_to_num(batch.targets)).abs() * known
            sums += error.sum(dim=(0, 1)).double()
            counts += known.sum(dim=(0, 1)).double()
    partner, offset = (sums / counts).tolist()
    return {"partner_mae": partner, "local_mae": offset}


def evaluate(model: PairModel, batches: list[PairTaskBatch]) -> dict[str, float]:
    """The model's MAE per target, in eval mode."""
    model.eval()
    result = mae(model, batches)
    model.train()
    return result


def eval_set(lengths: tuple[int, int], count: int, seed: int, offset: int) -> list[PairTaskBatch]:
    generator = torch.Generator().manual_seed(seed)
    return [pair_task_batch(16, *lengths, generator, offset) for _ in range(count // 16)]


def train_variant(
    position: str, use_pair: bool, args: argparse.Namespace, sets: dict[str, list]
) -> dict:
    steps, seed, offset = args.steps, args.seed, args.offset
    torch.manual_seed(seed)
    model = PairModel(position, use_pair)
    # The bias must grow to about log(T) to route a query's attention to its partner, and
    # Adam moves each weight by about the learning rate per step: at 2e-3 that takes thousands
    # of steps (measured: no gain at all in 250), so PairBias learns `pair_lr_scale` x faster.
    pair = [] if model.pair_bias is None else list(model.pair_bias.parameters())
    rest = [p for p in model.parameters() if all(p is not q for q in pair)]
    groups = [{"params": rest}]
    if pair:
        groups.append({"params": pair, "lr": 2e-3 * args.pair_lr_scale})
    optimizer = torch.optim.AdamW(groups, lr=2e-3, weight_decay=0.01)
    warmup = max(steps // 10, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * step / steps))),
    )
    generator = torch.Generator().manual_seed(seed + 1)
    start = time.perf_counter()
    for _ in range(steps):
        batch = pair_task_batch(16, *TRAIN_LENGTHS, generator, offset)
        predictions = model(batch)
        loss = position_regression_loss(predictions, batch.targets, batch.lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    minutes = (time.perf_counter() - start) / 60
    result = {"position": position, "pair_bias": use_pair, "steps": steps, "offset": offset,
              "train_minutes": round(minutes, 2)}  # fmt: skip
    for name, batches in sets.items():
        result[name] = evaluate(model, batches)
    return result


def markdown(results: list[dict], baseline: dict) -> str:
    lines = [
        "| positions | pair bias | partner MAE, 20-200 | partner MAE, 200-450 "
        "| offset MAE, 20-200 | offset MAE, 200-450 | minutes |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| predict 0 | - | {baseline['seen']['partner_mae']:.3f} "
        f"| {baseline['long']['partner_mae']:.3f} | {baseline['seen']['local_mae']:.3f} "
        f"| {baseline['long']['local_mae']:.3f} | - |",
    ]
    for r in results:
        lines.append(
            f"| {r['position']} | {'yes' if r['pair_bias'] else 'no'} "
            f"| {r['seen']['partner_mae']:.3f} | {r['long']['partner_mae']:.3f} "
            f"| {r['seen']['local_mae']:.3f} | {r['long']['local_mae']:.3f} "
            f"| {r['train_minutes']:.1f} |"
        )
    return "\n".join(lines)


def zero_baseline(sets) -> dict:
    """The MAE of predicting 0 (the targets' mean) everywhere."""
    return {name: mae(lambda b: torch.zeros_like(b.targets), batches)
            for name, batches in sets.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pair-lr-scale", type=float, default=20.0)
    parser.add_argument("--offset", type=int, default=3,
                        help="target 1 reads the features this many positions back")  # fmt: skip
    parser.add_argument("--eval-sequences", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="positions to run (default: every variant)")
    parser.add_argument("--without-pair", action="store_true",
                        help="every scheme without the pair matrix (an --offset beyond "
                             "the convolutions' reach: the pair bias takes all heads)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="JSON results file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = {
        "seen": eval_set(TRAIN_LENGTHS, args.eval_sequences, 10_000 + args.seed, args.offset),
        "long": eval_set(LONG_LENGTHS, args.eval_sequences // 2, 20_000 + args.seed, args.offset),
    }
    baseline = zero_baseline(sets)
    results = []
    variants = VARIANTS
    if args.without_pair:
        variants = [(position, False) for position, _ in VARIANTS[1:]]
    for position, use_pair in variants:
        if args.only and position not in args.only:
            continue
        result = train_variant(position, use_pair, args, sets)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(markdown(results, baseline))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        options = {
            k: v
            for k, v in vars(args).items()
            if v is not None and k not in ("out", "only", "without_pair")
        }
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())
        command = f"python tools/pair_task_experiment.py {flags}"
        if args.without_pair:
            command += " --without-pair"
        payload = {"command": command, "baseline": baseline, "results": results}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
