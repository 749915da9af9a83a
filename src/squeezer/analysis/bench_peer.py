"""One benchmark process: time one encoder under the throughput protocol, print one JSON line.

`squeezer.analysis.bench_rounds` starts this module once per (round, preset, implementation),
for ours and for the peer alike, so that each encoder gets a fresh process with the same thread
count and allocator state, and so that the peer package, reached only through this process's
PYTHONPATH, is never importable next to ours. Its stdout is a pipe to the parent, not a console.

Protocol (shared/MEASUREMENTS.md): a batch of 8 utterances of 80-dim features at 10 ms per
frame, alternately 10 s and 8 s long; fp32; `torch.set_num_threads(threads)`; one warm-up
run, then `repeats` timed runs; an eval-mode forward under `torch.no_grad`, and a train-mode
forward + backward of the mean square of the output. Every timed run is reported twice: in
wall seconds and in seconds of CPU time charged to this process (user + system, all threads),
which leaves out the time a shared host's neighbours steal. Our encoder's process also times
fp32 matmuls of the encoder's own sizes (`matmul_rates`), the machine's matmul peak in the same
run, against which the parent sets the forward's analytic FLOPs per second.

    python -m squeezer.analysis.bench_peer --implementation squeezeformer \
        --preset squeezeformer-xs --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn

Implementation = Literal["squeezer", "squeezeformer"]
ForwardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

BATCH_SIZE = 8
FEATURE_DIM = 80
FRAME_SHIFT_S = 0.010
LONG_UTTERANCE_S = 10.0
SHORT_UTTERANCE_S = 8.0
SEED = 0
MATMUL_MIN_SECONDS = 0.05  # one timed matmul run loops until it lasts about this long
MATMUL_RUNS = 5  # timed runs per matmul shape after a warm-up; the fastest counts


@dataclass(frozen=True)
class Timing:
    """One pass timed `repeats` times after a warm-up: wall and process CPU seconds per run."""

    wall_seconds: list[float]
    cpu_seconds: list[float]


@dataclass(frozen=True)
class MatmulRate:
    """The fastest of MATMUL_RUNS runs of (batch, M, K) @ (batch, K, N) in fp32."""

    name: str
    batch: int
    m: int
    k: int
    n: int
    gflop_per_s: float  # 2 batch M K N / wall seconds / 1e9
    gflop_per_cpu_s: float  # the same per second of process CPU time


@dataclass(frozen=True)
class WorkerResult:
    """Timings of one encoder on the benchmark batch; throughput is left to the parent.

    `forward_seconds` and `train_seconds` are the fastest wall times (the fields of the
    best-of protocol); the lists hold every timed run, wall and CPU alike.
    """

    implementation: str
    preset: str
    params: int
    output_frames: int
    lengths: list[int]
    audio_seconds: float
    forward_seconds: float
    train_seconds: float
    forward_wall_seconds: list[float]
    forward_cpu_seconds: list[float]
    train_wall_seconds: list[float]
    train_cpu_seconds: list[float]
    matmul: list[MatmulRate]
    threads: int
    repeats: int
    torch_version: str


def batch_lengths(batch_size: int = BATCH_SIZE, seconds: float = LONG_UTTERANCE_S) -> list[int]:
    """Frames per utterance: `seconds` and 0.8 x `seconds` alternating, at FRAME_SHIFT_S."""
    if batch_size < 1 or seconds <= 0:
        raise ValueError(f"batch_size={batch_size} and seconds={seconds} must be positive")
    long_frames = max(1, round(seconds / FRAME_SHIFT_S))
    short_frames = max(1, round(seconds * SHORT_UTTERANCE_S / LONG_UTTERANCE_S / FRAME_SHIFT_S))
    return [long_frames if index % 2 == 0 else short_frames for index in range(batch_size)]


def make_batch(
    batch_size: int = BATCH_SIZE, seconds: float = LONG_UTTERANCE_S
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features (B, T, F) with zeros past each length, and lengths (B,) int64."""
    lengths = torch.tensor(batch_lengths(batch_size, seconds), dtype=torch.int64)
    frames = int(lengths.max())
    generator = torch.Generator().manual_seed(SEED)
    features = torch.randn(batch_size, frames, FEATURE_DIM, generator=generator)  # (B, T, F)
    padding = torch.arange(frames)[None, :] >= lengths[:, None]  # (B, T), True = pad
    return features.masked_fill(padding[..., None], 0.0), lengths


def build_squeezer(preset: str) -> tuple[nn.Module, ForwardFn]:
    """Our `SequenceEncoder` for `preset`, with a forward that returns its features (B, T', D)."""
    from squeezer import EncoderConfig, SequenceEncoder

    encoder = SequenceEncoder(EncoderConfig.preset(preset))
    return encoder, lambda x, lengths: encoder(x, lengths).features


def peer_kwargs(preset: str) -> dict[str, Any]:
    """The peer's `SqueezeformerEncoder` arguments for the width and depth of our `preset`."""
    from squeezer import EncoderConfig

    config = EncoderConfig.preset(preset)
    if config.time_reduce_idx is None or config.time_recover_idx is None:
        # The peer always halves and restores the frame rate, so it only mirrors U-Net presets.
        raise ValueError(f"preset {preset!r} has no Temporal U-Net; the peer cannot mirror it")
    return {
        "input_dim": config.input_dim,
        "encoder_dim": config.d_model,
        "num_layers": config.num_layers,
        "reduce_layer_index": config.time_reduce_idx,
        "recover_layer_index": config.time_recover_idx,
        "num_attention_heads": config.num_heads,
        "feed_forward_expansion_factor": config.ff_expansion,
        "conv_expansion_factor": 2,  # the only value the peer accepts
        "input_dropout_p": config.dropout,
        "feed_forward_dropout_p": config.dropout,
        "attention_dropout_p": config.attention_dropout,
        "conv_dropout_p": config.dropout,
        "conv_kernel_size": config.conv_kernel_size,
        "half_step_residual": False,
    }


def build_squeezeformer(preset: str) -> tuple[nn.Module, ForwardFn]:
    """The peer's encoder at our `preset`'s shape; its forward returns (features, lengths)."""
    try:
        from squeezeformer.encoder import SqueezeformerEncoder
    except ImportError as error:
        raise RuntimeError(
            "the peer package 'squeezeformer' is not importable; put its pip --target folder "
            "on PYTHONPATH"
        ) from error
    encoder = SqueezeformerEncoder(**peer_kwargs(preset))
    return encoder, lambda x, lengths: encoder(x, lengths)[0]


BUILDERS: dict[str, Callable[[str], tuple[nn.Module, ForwardFn]]] = {
    "squeezer": build_squeezer,
    "squeezeformer": build_squeezeformer,
}


def timed_runs(step: Callable[[], object], repeats: int, before: Callable[[], None]) -> Timing:
    """Run `step` once to warm up, then `repeats` times; wall and process CPU seconds of each."""
    # The warm-up pays for first-call allocations and kernel selection, which a training run
    # pays once, not per batch.
    before()
    step()
    wall, cpu = [], []
    for _ in range(repeats):
        before()
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return Timing(wall, cpu)


def best_seconds(step: Callable[[], object], repeats: int, before: Callable[[], None]) -> float:
    """Run `step` once to warm up, then `repeats` times; the fastest wall time in seconds."""
    return min(timed_runs(step, repeats, before).wall_seconds)


def time_forward(
    module: nn.Module, forward: ForwardFn, batch: tuple[torch.Tensor, torch.Tensor], repeats: int
) -> tuple[Timing, int]:
    """Eval-mode forward times under no_grad, and the output's frame count T'."""
    x, lengths = batch
    module.eval()
    with torch.no_grad():
        frames = forward(x, lengths).size(1)
        timing = timed_runs(lambda: forward(x, lengths), repeats, lambda: None)
    return timing, frames


def time_train_step(
    module: nn.Module, forward: ForwardFn, batch: tuple[torch.Tensor, torch.Tensor], repeats: int
) -> Timing:
    """Train-mode forward + backward times of the mean-square loss on the output."""
    x, lengths = batch
    module.train()

    def step() -> None:
        forward(x, lengths).pow(2).mean().backward()

    # Gradients are dropped outside the timed region so every step allocates them alike.
    return timed_runs(step, repeats, lambda: module.zero_grad(set_to_none=True))


def encoder_matmul_shapes(
    preset: str, batch_size: int, frames: int
) -> list[tuple[str, int, int, int, int]]:
    """(name, batch, M, K, N) of the matmuls that dominate the encoder at T' = `frames`.

    The feed-forward and attention projections are (B T', D) @ (D, N); the attention scores and
    their weighted sum are batched over B H with head width D / H.
    """
    from squeezer import EncoderConfig

    config = EncoderConfig.preset(preset)
    D, H = config.d_model, config.num_heads
    tokens = batch_size * frames  # B T'
    hidden = config.ff_expansion * D
    return [
        ("feed-forward in (BT', D) @ (D, 4D)", 1, tokens, D, hidden),
        ("feed-forward out (BT', 4D) @ (4D, D)", 1, tokens, hidden, D),
        ("projection (BT', D) @ (D, D)", 1, tokens, D, D),
        ("scores (BH, T', D/H) @ (BH, D/H, T')", batch_size * H, frames, D // H, frames),
        ("context (BH, T', T') @ (BH, T', D/H)", batch_size * H, frames, frames, D // H),
    ]


def matmul_rate(name: str, batch: int, m: int, k: int, n: int) -> MatmulRate:
    """Time fp32 (batch, M, K) @ (batch, K, N) into a preallocated output; the fastest run."""
    generator = torch.Generator().manual_seed(SEED)
    a = torch.randn(batch, m, k, generator=generator).squeeze(0)
    b = torch.randn(batch, k, n, generator=generator).squeeze(0)
    out = torch.empty(batch, m, n).squeeze(0)
    multiply = torch.mm if batch == 1 else torch.bmm
    multiply(a, b, out=out)  # warm-up
    start = time.perf_counter()
    multiply(a, b, out=out)
    once = max(time.perf_counter() - start, 1e-6)
    loops = max(1, round(MATMUL_MIN_SECONDS / once))
    best_wall = best_cpu = float("inf")
    for _ in range(MATMUL_RUNS):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(loops):
            multiply(a, b, out=out)
        best_wall = min(best_wall, time.perf_counter() - start_wall)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    gflop = 2 * batch * m * k * n * loops / 1e9
    return MatmulRate(name, batch, m, k, n, gflop / best_wall, gflop / max(best_cpu, 1e-9))


def matmul_rates(preset: str, batch_size: int, frames: int) -> list[MatmulRate]:
    """fp32 GFLOP/s of each of the encoder's dominant matmul shapes on this machine, now."""
    with torch.no_grad():
        return [matmul_rate(*shape) for shape in encoder_matmul_shapes(preset, batch_size, frames)]


def measure(
    implementation: str,
    preset: str,
    repeats: int,
    threads: int,
    batch_size: int = BATCH_SIZE,
    seconds: float = LONG_UTTERANCE_S,
) -> WorkerResult:
    """Build one encoder on CPU in fp32 and time it under the protocol."""
    if implementation not in get_args(Implementation):
        raise ValueError(
            f"implementation={implementation!r} is not one of {', '.join(get_args(Implementation))}"
        )
    if repeats < 1 or threads < 1:
        raise ValueError(f"repeats={repeats} and threads={threads} must be >= 1")
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    batch = make_batch(batch_size, seconds)
    module, forward = BUILDERS[implementation](preset)
    forward_timing, frames = time_forward(module, forward, batch, repeats)
    # Right after the forward, in the same process: the peak the forward is compared with.
    rates = matmul_rates(preset, batch_size, frames) if implementation == "squeezer" else []
    train_timing = time_train_step(module, forward, batch, repeats)
    lengths = batch[1].tolist()
    return WorkerResult(
        implementation=implementation,
        preset=preset,
        params=sum(parameter.numel() for parameter in module.parameters()),
        output_frames=frames,
        lengths=lengths,
        audio_seconds=sum(lengths) * FRAME_SHIFT_S,
        forward_seconds=min(forward_timing.wall_seconds),
        train_seconds=min(train_timing.wall_seconds),
        forward_wall_seconds=forward_timing.wall_seconds,
        forward_cpu_seconds=forward_timing.cpu_seconds,
        train_wall_seconds=train_timing.wall_seconds,
        train_cpu_seconds=train_timing.cpu_seconds,
        matmul=rates,
        threads=torch.get_num_threads(),
        repeats=repeats,
        torch_version=torch.__version__,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--implementation", required=True, choices=get_args(Implementation))
    parser.add_argument("--preset", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--seconds", type=float, default=LONG_UTTERANCE_S, help="the long utterances' length"
    )
    args = parser.parse_args(argv)
    result = measure(
        args.implementation, args.preset, args.repeats, args.threads, args.batch_size, args.seconds
    )
    print(json.dumps(asdict(result)))  # the parent reads this last line of stdout


if __name__ == "__main__":
    main()
