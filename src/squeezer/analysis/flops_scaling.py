"""Cost versus input length: analytic GFLOPs and CPU forward time, Conformer beside Squeezeformer.

    points = length_scaling(equal_width_pair("s"))  # conformer-s, squeezeformer-xs; 5-120 s

Attention grows with the square of the length and everything else linearly, so the Temporal
U-Net's saving (half the frames in the middle blocks) grows with the input; this measures it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from squeezer.analysis.flops import ELEMENTWISE, analytic_flops, frames_for_seconds
from squeezer.config import EncoderConfig
from squeezer.model import AsrModel

__all__ = [
    "EQUAL_WIDTH_PAIRS",
    "SCALING_SECONDS",
    "LengthPoint",
    "equal_width_pair",
    "length_scaling",
    "time_forward",
]

EQUAL_WIDTH_PAIRS = {
    "s": ("conformer-s", "squeezeformer-xs"),  # d_model 144, 16 blocks, 4 heads
    "m": ("conformer-m", "squeezeformer-sm"),  # d_model 256, 16 blocks, 4 heads
}
SCALING_SECONDS = (5.0, 10.0, 30.0, 60.0, 120.0)


def equal_width_pair(key: str) -> list[tuple[str, EncoderConfig]]:
    """The Conformer and the Squeezeformer of one width: "s" (d_model 144) or "m" (256)."""
    if key not in EQUAL_WIDTH_PAIRS:
        raise ValueError(f"pair {key!r} is not one of {', '.join(EQUAL_WIDTH_PAIRS)}")
    return [(name, EncoderConfig.preset(name)) for name in EQUAL_WIDTH_PAIRS[key]]


@dataclass(frozen=True)
class LengthPoint:
    """One model at one input length: analytic GFLOPs and the best CPU forward time."""

    name: str
    seconds: float
    frames: int
    gflops: float
    elementwise_gflops: float
    forward_s: float | None
    threads: int


def time_forward(models: Sequence[AsrModel], frames: int, repeats: int = 3) -> list[float]:
    """Best wall time of `repeats` eval forwards of a (1, frames, F) input, per model.

    Each model runs once to warm up (allocator, oneDNN kernel choice); then the timed runs
    alternate between the models, so that a slow spell of a shared machine hits them alike.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    inputs = [torch.randn(1, frames, model.config.input_dim) for model in models]
    lengths = torch.tensor([frames])
    best = [float("inf")] * len(models)
    with torch.no_grad():
        for model, x in zip(models, inputs, strict=True):
            model.eval()(x, lengths)
        for _ in range(repeats):
            for index, (model, x) in enumerate(zip(models, inputs, strict=True)):
                start = time.perf_counter()
                model(x, lengths)
                best[index] = min(best[index], time.perf_counter() - start)
    return best


def length_scaling(
    models: Sequence[tuple[str, EncoderConfig]],
    seconds_list: Sequence[float] = SCALING_SECONDS,
    vocab_size: int = 128,
    repeats: int = 3,
    timed: bool = True,
) -> list[LengthPoint]:
    """GFLOPs (analytic) and CPU forward time (eval, no_grad, best of `repeats`) per length.

    Runs on the threads torch is set to use (`torch.set_num_threads`); `timed=False` skips the
    forward passes. Returns the points model by model, lengths in the given order.
    """
    built = [AsrModel(config, vocab_size=vocab_size) for _, config in models] if timed else []
    points = []
    for seconds in seconds_list:
        frames = frames_for_seconds(seconds)
        times = time_forward(built, frames, repeats) if timed else [None] * len(models)
        for (name, config), forward_s in zip(models, times, strict=True):
            flops = analytic_flops(config, frames, vocab_size)
            points.append(
                LengthPoint(
                    name=name,
                    seconds=float(seconds),
                    frames=frames,
                    gflops=flops.matmul_total / 1e9,
                    elementwise_gflops=flops.components[ELEMENTWISE] / 1e9,
                    forward_s=forward_s,
                    threads=torch.get_num_threads(),
                )
            )
    order = [name for name, _ in models]
    return sorted(points, key=lambda point: order.index(point.name))  # stable: lengths kept
