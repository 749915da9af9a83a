from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from squeezer import EncoderConfig
from squeezer.structured import apply_overrides, from_mapping, to_mapping


@dataclass(frozen=True)
class Optim:
    peak_lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    kind: Literal["adamw", "sgd"] = "adamw"


@dataclass(frozen=True)
class Run:
    steps: int = 10
    name: str | None = None
    amp: bool = False
    optim: Optim = field(default_factory=Optim)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)


def test_round_trip_through_plain_mappings():
    config = Run(steps=3, name="x", optim=Optim(peak_lr=2e-3, betas=(0.8, 0.9)))
    assert from_mapping(Run, to_mapping(config)) == config


def test_overrides_are_typed():
    config = apply_overrides(
        Run(), ["optim.peak_lr=5e-4", "steps=7", "amp=true", "optim.betas=[0.5, 0.6]"]
    )
    assert config.optim.peak_lr == 5e-4 and config.steps == 7 and config.amp is True
    assert config.optim.betas == (0.5, 0.6)
    assert apply_overrides(Run(), ["optim.peak_lr=1"]).optim.peak_lr == 1.0
    assert (
        apply_overrides(Run(), ["encoder.d_model=64", "encoder.num_heads=2"]).encoder.d_model == 64
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.peak_rl=1", "optim.peak_rl"),
        ("nothing.here=1", "nothing.here"),
        ("steps=ten", "steps"),
        ("steps=1.5", "steps"),
        ("amp=1", "amp"),
        ("optim.kind=adam", "optim.kind"),
        ("no-equals-sign", "key.path=value"),
        ("encoder.block_layout=macaron", "block_layout"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(Run(), [override])


def test_unknown_nested_keys_are_named():
    with pytest.raises(ValueError, match=r"optim\.lr"):
        from_mapping(Run, {"optim": {"lr": 1.0}})
