"""Encoder configuration: sizes, the paper's five switches, presets, the ablation ladder, YAML io.

Squeezeformer (Kim et al., NeurIPS 2022, arXiv 2206.00888) turns a Conformer into a
Squeezeformer in five steps (paper Section 3, Table 1). Each step is one field here, in the
paper's order, so any rung between the two architectures is one `EncoderConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from squeezer.structured import from_mapping, read_yaml

BlockLayout = Literal["conformer", "squeezeformer"]
ConvActivation = Literal["glu", "swish"]
NormScheme = Literal["pre_post", "post_scale_bias"]
SubsamplingKind = Literal["conv2d", "depthwise", "none"]
PositionScheme = Literal["relative", "rope", "alibi", "absolute", "none"]

__all__ = [
    "EncoderConfig",
    "Rung",
    "ablation_ladder",
    "list_presets",
]


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that defines a `SequenceEncoder`; validated once, on construction.

    Sizes follow the paper's Table 3. The switches, in the paper's order:

    1. `time_reduce_idx` / `time_recover_idx` (Temporal U-Net, Section 3.1): block indices
       (0-based) before which the frame rate is halved and restored; None disables it.
       `time_recover_idx=None` with a reduce index keeps the half rate to the output.
    2. `block_layout` (Section 3.2): "conformer" = Macaron FF/2 -> MHA -> Conv -> FF/2 with
       pre-LN and a final LN; "squeezeformer" = MHA -> FF -> Conv -> FF, each module followed
       by a post-LN, full-step FF residuals.
    3. `conv_activation` (Section 3.3.1): "glu" (Conformer) or "swish" (unified activation).
    4. `norm_scheme` (Section 3.3.2): "pre_post" keeps a pre-LN on every module input;
       "post_scale_bias" replaces it with a learnable per-channel scale and bias
       (squeezeformer layout only: the conformer layout has no post-LN to keep).
    5. `subsampling` (Section 3.3.3): "conv2d" (two 3x3 stride-2 Conv2d), "depthwise" (the
       second conv depthwise-separable), or "none" (a linear projection, for non-audio input).

    Beyond the paper, for non-speech sequences (the defaults leave the paper's models as
    they are):

    - `position`: how attention sees order. "relative" is the paper's Transformer-XL scheme;
      "rope" rotates queries and keys (Su et al. 2021); "alibi" adds a symmetric linear
      distance penalty per head (Press et al. 2022); "absolute" adds sinusoids to the input
      once; "none" leaves order to the convolutions. None has a fixed maximum length.
      Relative positions, RoPE and ALiBi count frames at each block's own rate (half-rate
      blocks of the Temporal U-Net see distances in 2-frame steps).
    - `drop_path`: stochastic depth, the rate at the last block; block i drops each
      residual branch per sample with rate `drop_path * i / (num_layers - 1)`.
    """

    input_dim: int = 80
    d_model: int = 144
    num_layers: int = 16
    num_heads: int = 4
    ff_expansion: int = 4
    conv_kernel_size: int = 31
    dropout: float = 0.1
    attention_dropout: float = 0.1
    subsampling_channels: int | None = None  # None: d_model, as in the paper
    subsampling_factor: int = 4
    xscaling: bool = True  # multiply the subsampled input by sqrt(d_model), as NeMo does
    time_reduce_idx: int | None = 7
    time_recover_idx: int | None = 15
    block_layout: BlockLayout = "squeezeformer"
    conv_activation: ConvActivation = "swish"
    norm_scheme: NormScheme = "post_scale_bias"
    subsampling: SubsamplingKind = "depthwise"
    position: PositionScheme = "relative"
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        self._check_literals()
        self._check_sizes()
        self._check_unet()
        if self.norm_scheme == "post_scale_bias" and self.block_layout != "squeezeformer":
            raise ValueError(
                f"norm_scheme='post_scale_bias' needs block_layout='squeezeformer', "
                f"got block_layout={self.block_layout!r}"
            )

    def _check_literals(self) -> None:
        for name in ("block_layout", "conv_activation", "norm_scheme", "subsampling", "position"):
            allowed = get_args(_FIELD_TYPES[name])
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")

    def _check_sizes(self) -> None:
        positive = ("input_dim", "d_model", "num_layers", "num_heads", "ff_expansion")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}"
            )
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(
                f"position='rope' needs an even head size d_model / num_heads, got {self.head_dim}"
            )
        if self.conv_kernel_size < 1 or self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size={self.conv_kernel_size} must be odd and >= 1")
        for name in ("dropout", "attention_dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be in [0, 1)")
        if self.subsampling != "none" and self.subsampling_factor not in (2, 4, 8):
            raise ValueError(f"subsampling_factor={self.subsampling_factor} must be 2, 4 or 8")
        channels = self.subsampling_channels
        if channels is not None and channels < 1:
            raise ValueError(f"subsampling_channels={channels} must be positive or None")

    def _check_unet(self) -> None:
        reduce, recover = self.time_reduce_idx, self.time_recover_idx
        if reduce is None:
            if recover is not None:
                raise ValueError(f"time_recover_idx={recover} needs a time_reduce_idx")
            return
        if not 0 <= reduce < self.num_layers:
            raise ValueError(f"time_reduce_idx={reduce} must lie in [0, {self.num_layers})")
        if recover is not None and not reduce < recover < self.num_layers:
            raise ValueError(
                f"time_recover_idx={recover} must lie in ({reduce}, {self.num_layers})"
            )

    # -- derived sizes -------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def conv_channels(self) -> int:
        """Subsampling channels: `subsampling_channels`, or d_model when unset."""
        return self.subsampling_channels or self.d_model

    @property
    def uses_unet(self) -> bool:
        return self.time_reduce_idx is not None

    # -- construction helpers ------------------------------------------------------------

    def replace(self, **changes: Any) -> EncoderConfig:
        """A copy with `changes` applied (validated like any new config)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EncoderConfig:
        """Build from a mapping, typed as a recipe is: an unknown key or a value of the wrong
        type is a one-line ValueError naming it."""
        return from_mapping(cls, values)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> EncoderConfig:
        """Read a YAML mapping of fields (plain YAML: no Python tags); errors name the file."""
        values = read_yaml(path)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of encoder config keys")
        try:
            return cls.from_dict(values)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    @classmethod
    def preset(cls, name: str) -> EncoderConfig:
        """One of the paper's models by name, e.g. "squeezeformer-xs" (see `list_presets`)."""
        try:
            return _PRESETS[name]
        except KeyError:
            raise ValueError(
                f"unknown preset {name!r}; choose from {', '.join(_PRESETS)}"
            ) from None


_FIELD_TYPES = {
    "block_layout": BlockLayout,
    "conv_activation": ConvActivation,
    "norm_scheme": NormScheme,
    "subsampling": SubsamplingKind,
    "position": PositionScheme,
}

_CONFORMER = dict(
    time_reduce_idx=None,
    time_recover_idx=None,
    block_layout="conformer",
    conv_activation="glu",
    norm_scheme="pre_post",
    subsampling="conv2d",
)


def _squeezeformer(d_model: int, num_layers: int, num_heads: int) -> EncoderConfig:
    # The official configs reduce before block L/2 - 1 and recover before the last block.
    return EncoderConfig(
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        time_reduce_idx=num_layers // 2 - 1,
        time_recover_idx=num_layers - 1,
    )


def _conformer(d_model: int, num_layers: int, num_heads: int) -> EncoderConfig:
    return EncoderConfig(d_model=d_model, num_layers=num_layers, num_heads=num_heads, **_CONFORMER)


# Paper Table 3 and the official configs (kssteven418/Squeezeformer examples/.../configs).
_PRESETS: dict[str, EncoderConfig] = {
    "squeezeformer-xs": _squeezeformer(144, 16, 4),
    "squeezeformer-s": _squeezeformer(196, 18, 4),
    "squeezeformer-sm": _squeezeformer(256, 16, 4),
    "squeezeformer-m": _squeezeformer(324, 20, 4),
    "squeezeformer-ml": _squeezeformer(512, 18, 8),
    "squeezeformer-l": _squeezeformer(640, 22, 8),
    "conformer-s": _conformer(144, 16, 4),
    "conformer-m": _conformer(256, 16, 4),
    "conformer-l": _conformer(512, 18, 8),
}


def list_presets() -> list[str]:
    """Names accepted by `EncoderConfig.preset`."""
    return list(_PRESETS)


@dataclass(frozen=True)
class Rung:
    """One step of the ablation ladder: a name, what changed, and the resulting config."""

    name: str
    change: str
    config: EncoderConfig


def ablation_ladder() -> list[Rung]:
    """Conformer-M to Squeezeformer-SM one switch at a time, in the paper's order (Table 1)."""
    base = EncoderConfig.preset("conformer-m")
    target = EncoderConfig.preset("squeezeformer-sm")
    steps = [
        ("temporal-unet", "Temporal U-Net: blocks 7-14 at half frame rate",
         dict(time_reduce_idx=target.time_reduce_idx, time_recover_idx=target.time_recover_idx)),
        ("squeezeformer-block", "MHA-FF-Conv-FF block with post-LN",
         dict(block_layout="squeezeformer")),
        ("unified-activation", "Swish instead of GLU in the conv module",
         dict(conv_activation="swish")),
        ("simplified-layernorm", "pre-LN replaced by a learnable scale and bias",
         dict(norm_scheme="post_scale_bias")),
        ("depthwise-subsampling", "depthwise-separable second subsampling conv",
         dict(subsampling="depthwise")),
    ]  # fmt: skip
    rungs = [Rung("conformer-m", "baseline", base)]
    for name, change, fields in steps:
        rungs.append(Rung(name, change, rungs[-1].config.replace(**fields)))
    return rungs
