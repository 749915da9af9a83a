"""The recipe of a non-audio sequence task: one YAML file, as the speech recipes are.

task:      ctc (text per sequence), classify (a class per sequence), regress (values per
           position), value (values per sequence)
model:     a preset name, or `encoder:` with every EncoderConfig field; `input_dim` is the
           training data's feature count, whatever the recipe says
head:      the task's head: pooling (classify, value), a GRU before the per-position head (regress),
           the PairBias CNN (when the data has pair matrices)
data:      manifests (JSONL or Parquet, `squeezer.sequences.manifest`), batch size in padded
           positions, the longest sequence trained on, NaN handling, normalisation
augment:   time resampling, time and feature masks, Gaussian noise, mixup, mirroring
optim/run: the speech recipe's own sections (`squeezer.training.recipe`)

`squeezer train RECIPE` reads a recipe with a `task:` key as one of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from squeezer.config import EncoderConfig
from squeezer.sequences.manifest import TASKS, TaskKind
from squeezer.structured import apply_overrides, from_mapping, read_yaml, short_repr, to_mapping
from squeezer.training.recipe import (
    PACKAGED_RECIPES,
    FinetuneConfig,
    OptimConfig,
    RunConfig,
    _check,
    _non_negative,
    _positive,
    find_recipe,
)

__all__ = [
    "AugmentConfig",
    "HeadConfig",
    "SequenceDataConfig",
    "SequenceTrainConfig",
    "is_sequence_recipe",
    "load_sequence_recipe",
]


@dataclass(frozen=True)
class HeadConfig:
    pooling: Literal["mean", "gem"] = "mean"  # classify: over the real positions
    gru_hidden: int | None = None  # regress: a bidirectional GRU of this size before the linear
    pair_hidden: int = 32  # PairBias, used when the data has pair matrices
    pair_kernel: int = 7
    pair_layers: int = 2
    # PairBias's learning rate as a multiple of optim.peak_lr (schedule alike): its bias must
    # grow to about log T before attention follows it, which takes thousands of steps at the
    # encoder's rate (docs/sequences.md measured 20 x reaching it within 200 steps)
    pair_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        _check("head", self, "gru_hidden", _positive, ">= 1")
        _check("head", self, "pair_hidden", _positive, ">= 1")
        _check("head", self, "pair_layers", _positive, ">= 1")
        _check("head", self, "pair_kernel", lambda v: v >= 1 and v % 2 == 1, "odd and >= 1")
        _check("head", self, "pair_lr_scale", _positive, "> 0")


@dataclass(frozen=True)
class SequenceDataConfig:
    train: str = ""  # manifest (.jsonl or .parquet); relative to the recipe file
    dev: str | None = None
    max_positions: int = 8192  # padded positions per batch (batch size x longest), per process
    max_length: int | None = None  # longer training sequences are dropped (and counted)
    nan_to: float | None = None  # NaN features (a missing landmark) become this; None: an error
    normalize: bool = True  # standardise each feature with the training split's statistics
    num_workers: int = 0

    def __post_init__(self) -> None:
        _check("data", self, "max_positions", _positive, ">= 1")
        _check("data", self, "max_length", _positive, ">= 1")
        _check("data", self, "num_workers", _non_negative, ">= 0")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentations of training sequences, each off by default.

    - stretch: [low, high]: resample time by a factor drawn uniformly (0.8: 20 % shorter), by
      linear interpolation; ctc and classify (per-position targets and pair matrices would have
      to be resampled with it, so regress and pair data refuse it).
    - time_masks / time_mask_fraction: that many spans, each up to this fraction of the length,
      set to zero (the normalised mean).
    - feature_masks / feature_mask_width: that many runs of up to this many features, zeroed.
    - noise_std: Gaussian noise of this standard deviation on the normalised features.
    - mixup_alpha: mixup of sequences and their labels with Beta(alpha, alpha) weights
      (classify; the shorter sequence is zero-padded).
    - mirror_columns / mirror_center: with probability mirror_prob, each listed column x becomes
      2 * center - x (the x coordinates of landmarks in [0, 1]: center 0.5), before
      normalisation.
    """

    stretch: tuple[float, float] | None = None
    time_masks: int = 0
    time_mask_fraction: float = 0.1
    feature_masks: int = 0
    feature_mask_width: int = 1
    noise_std: float = 0.0
    mixup_alpha: float = 0.0
    mirror_columns: tuple[int, ...] = ()
    mirror_center: float = 0.5
    mirror_prob: float = 0.5

    def __post_init__(self) -> None:
        _check(
            "augment", self, "stretch", lambda v: 0 < v[0] <= v[1], "[low, high], 0 < low <= high"
        )
        for name in ("time_masks", "feature_masks", "noise_std", "mixup_alpha"):
            _check("augment", self, name, _non_negative, ">= 0")
        _check("augment", self, "time_mask_fraction", lambda v: 0 < v <= 1, "in (0, 1]")
        _check("augment", self, "feature_mask_width", _positive, ">= 1")
        _check("augment", self, "mirror_prob", lambda v: 0 <= v <= 1, "in [0, 1]")
        _check("augment", self, "mirror_columns", lambda v: min(v, default=0) >= 0, "indices >= 0")

    @property
    def active(self) -> bool:
        return self != AugmentConfig()


@dataclass(frozen=True)
class SequenceTrainConfig:
    """A sequence recipe (see the module's docstring). The shared loop reads `optim`, `run`,
    `data.train` and `finetune` (never set: sequence models train from scratch)."""

    task: TaskKind = "classify"
    model: str | None = None
    encoder: EncoderConfig | None = None
    head: HeadConfig = field(default_factory=HeadConfig)
    data: SequenceDataConfig = field(default_factory=SequenceDataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def finetune(self) -> FinetuneConfig:
        return FinetuneConfig()

    def encoder_config(self, input_dim: int) -> EncoderConfig:
        """The recipe's encoder for `input_dim` features per position."""
        if self.encoder is not None:
            encoder = self.encoder
        elif self.model is not None:
            encoder = EncoderConfig.preset(self.model)
        else:
            raise ValueError("set either model (a preset name) or encoder (a full config)")
        return replace(encoder, input_dim=input_dim)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(to_mapping(self), sort_keys=False))


def is_sequence_recipe(path: str | Path) -> bool:
    """Whether the recipe file (or packaged name) is a sequence task's: it has a `task:` key."""
    values = read_yaml(find_recipe(path))
    return isinstance(values, dict) and "task" in values


def _check_task(config: SequenceTrainConfig) -> None:
    """What the task and the recipe's other sections must agree on, checked before any data."""
    if config.task not in TASKS:
        raise ValueError(f"task={short_repr(config.task)} is not one of {', '.join(TASKS)}")
    encoder = config.encoder_config(1)
    if config.task == "regress" and encoder.subsampling != "none":
        raise ValueError(
            "task=regress predicts a value per input position: set encoder.subsampling=none "
            f"(it is {encoder.subsampling})"
        )
    augment = config.augment
    if augment.stretch is not None and config.task == "regress":
        raise ValueError("augment.stretch cannot resample per-position targets (task=regress)")
    if augment.mixup_alpha and config.task != "classify":
        raise ValueError(f"augment.mixup_alpha is for task=classify, not {config.task}")
    if not config.data.train:
        raise ValueError("data.train (the training manifest) is required")
    optim, steps = config.optim, config.run.max_steps
    if optim.schedule == "cosine" and steps is not None and steps <= optim.warmup_steps:
        raise ValueError(
            f"run.max_steps={steps} must exceed optim.warmup_steps ({optim.warmup_steps}) for "
            "the cosine schedule"
        )


def load_sequence_recipe(
    path: str | Path, overrides: list[str] | None = None
) -> SequenceTrainConfig:
    """Read a sequence recipe, apply `--set` overrides, resolve manifest paths against the
    file's folder (a packaged recipe's against the working folder). Any problem is one
    ValueError of one line that starts with the recipe's path."""
    path = find_recipe(path)
    base = Path.cwd() if path.is_relative_to(PACKAGED_RECIPES) else path.parent
    values: Any = read_yaml(path)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of sections (task, data, optim, ...)")
    try:
        config = from_mapping(SequenceTrainConfig, values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    config = apply_overrides(config, overrides or [])
    try:
        _check_task(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    data = config.data

    def resolve(manifest: str | None) -> str | None:
        if not manifest or Path(manifest).is_absolute():
            return manifest
        return str((base / manifest).resolve())

    return replace(config, data=replace(data, train=resolve(data.train), dev=resolve(data.dev)))
