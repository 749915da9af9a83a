"""Shared fixtures: small configs that keep every switch but run in milliseconds on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from squeezer import EncoderConfig, ablation_ladder


def shrink(config: EncoderConfig, **changes) -> EncoderConfig:
    """The same switches at a test-friendly size (U-Net indices scaled to 4 blocks)."""
    unet = {}
    if config.time_reduce_idx is not None:
        unet = dict(time_reduce_idx=1, time_recover_idx=3 if config.time_recover_idx else None)
    sizes = dict(input_dim=20, d_model=32, num_layers=4, num_heads=4, conv_kernel_size=7)
    return config.replace(**{**sizes, **unet, **changes})


def small_rungs() -> list[tuple[str, EncoderConfig]]:
    """Every ablation rung, shrunk, plus the two variants the ladder does not visit."""
    rungs = [(rung.name, shrink(rung.config)) for rung in ablation_ladder()]
    last = rungs[-1][1]
    rungs.append(("reduce-without-recovery", last.replace(time_recover_idx=None)))
    rungs.append(("no-subsampling", last.replace(subsampling="none")))
    return rungs


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The tiny synthetic corpus (espeak-ng), built once per test module that asks for it."""
    from squeezer.data.corpus import synthesize_corpus

    out = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(out, "tiny", seed=0)
    return out


def first_utterances(corpus: Path, count: int, path: Path) -> Path:
    """A manifest at `path` of the corpus's first `count` training utterances."""
    from squeezer.data.manifests import load_cuts, save_cuts

    return save_cuts(load_cuts(corpus / "train.jsonl.gz").subset(first=count), path)


LONGEST_ERROR = 400  # an error quotes values cut short, never a whole alias bomb or tensor


def assert_one_line_error(message: str, *names: str) -> None:
    """A user error as fuzzing expects it: one short line holding each of `names`."""
    assert "\n" not in message and "\r" not in message, message
    assert len(message) <= LONGEST_ERROR, message[:LONGEST_ERROR]
    assert all(name in message for name in names), (names, message)


def flip_bytes(data: bytes, rng, flips: int, start: int = 0) -> bytes:
    """`data` with `flips` bytes at or after `start` replaced by random ones (seeded `rng`)."""
    flipped = bytearray(data)
    for _ in range(flips):
        flipped[rng.randrange(start, len(flipped))] = rng.randrange(256)
    return bytes(flipped)
