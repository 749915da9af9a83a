"""One benchmark process: time one encoder under the throughput protocol, print one JSON line.

`squeezer.analysis.bench` starts this module once per (implementation, preset), for ours and
for the peer alike, so that each encoder gets a fresh process with the same thread count and
allocator state, and so that the peer package, reached only through this process's PYTHONPATH,
is never importable next to ours. Its stdout is a pipe to the parent, not a console.

Protocol (shared/MEASUREMENTS.md): a batch of 8 utterances of 80-dim features at 10 ms per
frame, alternately 10 s and 8 s long; fp32; `torch.set_num_threads(threads)`; one warm-up
run, then the best of `repeats`; an eval-mode forward under `torch.no_grad`, and a train-mode
forward + backward of the mean square of the output.

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


@dataclass(frozen=True)
class WorkerResult:
    """Best wall times of one encoder on the benchmark batch; throughput is left to the parent."""

    implementation: str
    preset: str
    params: int
    output_frames: int
    audio_seconds: float
    forward_seconds: float
    train_seconds: float
    threads: int
    repeats: int
    torch_version: str


def batch_lengths(batch_size: int = BATCH_SIZE) -> list[int]:
    """Frames per utterance: 10 s and 8 s alternating, at FRAME_SHIFT_S per frame."""
    long_frames = round(LONG_UTTERANCE_S / FRAME_SHIFT_S)
    short_frames = round(SHORT_UTTERANCE_S / FRAME_SHIFT_S)
    return [long_frames if index % 2 == 0 else short_frames for index in range(batch_size)]


def make_batch(batch_size: int = BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features (B, T, F) with zeros past each length, and lengths (B,) int64."""
    lengths = torch.tensor(batch_lengths(batch_size), dtype=torch.int64)
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


def best_seconds(step: Callable[[], object], repeats: int, before: Callable[[], None]) -> float:
    """Run `step` once to warm up, then `repeats` times; the fastest wall time in seconds."""
    # The warm-up pays for first-call allocations and kernel selection, which a training run
    # pays once, not per batch.
    before()
    step()
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def time_forward(module: nn.Module, forward: ForwardFn, repeats: int) -> tuple[float, int]:
    """Best eval-mode forward time under no_grad, and the output's frame count T'."""
    x, lengths = make_batch()
    module.eval()
    with torch.no_grad():
        frames = forward(x, lengths).size(1)
        seconds = best_seconds(lambda: forward(x, lengths), repeats, lambda: None)
    return seconds, frames


def time_train_step(module: nn.Module, forward: ForwardFn, repeats: int) -> float:
    """Best train-mode forward + backward time of the mean-square loss on the output."""
    x, lengths = make_batch()
    module.train()

    def step() -> None:
        forward(x, lengths).pow(2).mean().backward()

    # Gradients are dropped outside the timed region so every step allocates them alike.
    return best_seconds(step, repeats, lambda: module.zero_grad(set_to_none=True))


def measure(implementation: str, preset: str, repeats: int, threads: int) -> WorkerResult:
    """Build one encoder on CPU in fp32 and time it under the protocol."""
    if implementation not in get_args(Implementation):
        raise ValueError(
            f"implementation={implementation!r} is not one of {', '.join(get_args(Implementation))}"
        )
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    module, forward = BUILDERS[implementation](preset)
    forward_seconds, frames = time_forward(module, forward, repeats)
    train_seconds = time_train_step(module, forward, repeats)
    return WorkerResult(
        implementation=implementation,
        preset=preset,
        params=sum(parameter.numel() for parameter in module.parameters()),
        output_frames=frames,
        audio_seconds=sum(batch_lengths()) * FRAME_SHIFT_S,
        forward_seconds=forward_seconds,
        train_seconds=train_seconds,
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
    args = parser.parse_args(argv)
    result = measure(args.implementation, args.preset, args.repeats, args.threads)
    print(json.dumps(asdict(result)))  # the parent reads this last line of stdout


if __name__ == "__main__":
    main()
