"""The training recipe: one YAML file, typed, with `--set key.path=value` overrides.

model:      a preset name, or `encoder:` with every EncoderConfig field
features:   FeatureConfig (log-mel frontend), spec_augment: SpecAugmentConfig
tokenizer:  kind, vocabulary size (trained on the training manifest's text)
data:       manifests, batch duration, duration limits, loader workers
optim:      AdamW; the Noam hold-annealing schedule (paper Section 4.1) or cosine annealing
run:        steps/epochs, checkpoints, averaging, EMA, precision, logging
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from squeezer.config import EncoderConfig
from squeezer.features import FeatureConfig, SpecAugmentConfig
from squeezer.structured import apply_overrides, from_mapping, to_mapping

__all__ = [
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "TokenizerConfig",
    "TrainConfig",
    "load_recipe",
]


@dataclass(frozen=True)
class TokenizerConfig:
    kind: Literal["char", "sentencepiece"] = "sentencepiece"
    vocab_size: int = 128  # SentencePiece only; characters take what the text holds
    model_type: Literal["unigram", "bpe"] = "unigram"


@dataclass(frozen=True)
class DataConfig:
    train: str = ""  # manifest (.jsonl.gz); relative paths are relative to the recipe file
    dev: str | None = None
    max_batch_seconds: float = 80.0  # total audio per batch (per process under torchrun)
    min_duration: float = 0.2
    max_duration: float = 20.0
    num_workers: int = 1
    num_buckets: int = 10
    speed_perturb: tuple[float, ...] = ()  # e.g. [0.9, 1.0, 1.1]; one drawn per utterance


@dataclass(frozen=True)
class OptimConfig:
    peak_lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 4e-5
    warmup_steps: int = 1000
    hold_steps: int = 0
    schedule: Literal["noam", "cosine"] = "noam"  # cosine anneals to min_lr at run.max_steps
    decay_rate: float = 1.0  # noam only
    min_lr: float = 1e-5
    grad_clip: float = 1.0
    accumulate: int = 1  # batches per optimiser step


@dataclass(frozen=True)
class RunConfig:
    epochs: int = 10
    max_steps: int | None = None  # optimiser steps; stops early when reached
    max_minutes: float | None = None  # wall-clock budget; stops at the next step after it
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    keep_last: int = 3
    average_last: int = 1  # checkpoints averaged into the final model
    ema_decay: float | None = None  # e.g. 0.999; the final model uses the EMA weights
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    max_bad_steps: int = 20  # non-finite steps in a row before the run stops
    device: str = "auto"  # auto: cuda if present (the local rank's), else cpu
    tensorboard: bool = False


@dataclass(frozen=True)
class TrainConfig:
    model: str | None = "squeezeformer-xs"
    encoder: EncoderConfig | None = None  # overrides `model` when given
    features: FeatureConfig = field(default_factory=FeatureConfig)
    spec_augment: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def encoder_config(self) -> EncoderConfig:
        if self.encoder is not None:
            return self.encoder
        if self.model is None:
            raise ValueError("set either model (a preset name) or encoder (a full config)")
        return EncoderConfig.preset(self.model)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(to_mapping(self), sort_keys=False))


def _resolve_paths(config: TrainConfig, base: Path) -> TrainConfig:
    def resolve(path: str | None) -> str | None:
        if not path:
            return path
        return str(Path(path) if Path(path).is_absolute() else (base / path).resolve())

    data = config.data
    resolved = {"train": resolve(data.train), "dev": resolve(data.dev)}
    return apply_overrides(config, [f"data.{k}={v if v else 'null'}" for k, v in resolved.items()])


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a recipe YAML, apply overrides, resolve manifest paths against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recipe")
    values = yaml.safe_load(path.read_text()) or {}
    config = apply_overrides(from_mapping(TrainConfig, values), overrides or [])
    config.encoder_config()  # fail now on a bad preset name, not after data loading
    if not config.data.train:
        raise ValueError(f"{path}: data.train (the training manifest) is required")
    return _resolve_paths(config, path.parent)
