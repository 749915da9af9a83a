"""Shared fixtures: small configs that keep every switch but run in milliseconds on CPU."""

from __future__ import annotations

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
