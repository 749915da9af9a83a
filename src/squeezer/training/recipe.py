"""The training recipe: one YAML file, typed, with `--set key.path=value` overrides.

model:      a preset name, or `encoder:` with every EncoderConfig field
features:   FeatureConfig (log-mel frontend), spec_augment: SpecAugmentConfig
tokenizer:  kind, vocabulary size (trained on the training manifest's text)
data:       manifests, batch duration, duration limits, loader workers
optim:      AdamW; the Noam hold-annealing schedule (paper Section 4.1) or cosine annealing
run:        steps/epochs, checkpoints, averaging, EMA, precision, logging
finetune:   start from a trained model (`--init PATH`): keep or replace its vocabulary, freeze
            its encoder for the first steps (see `FinetuneConfig`)

When fine-tuning, the architecture and the frontend are the init model's: leave `model:`,
`encoder:` and `features:` out (a section the recipe gives must agree with the model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from squeezer.config import EncoderConfig
from squeezer.features import FeatureConfig, SpecAugmentConfig
from squeezer.structured import apply_overrides, from_mapping, read_yaml, short_repr, to_mapping

__all__ = [
    "PACKAGED_RECIPES",
    "DataConfig",
    "FinetuneConfig",
    "OptimConfig",
    "RunConfig",
    "TokenizerConfig",
    "TrainConfig",
    "find_recipe",
    "load_recipe",
    "packaged_recipes",
]

PACKAGED_RECIPES = Path(__file__).resolve().parent.parent / "recipes"  # squeezer/recipes/


def _check(section: str, config: Any, name: str, ok: Callable[[Any], bool], what: str) -> None:
    """ValueError `section.name=value must be what` unless `ok(value)`: a recipe's numbers are
    checked when it loads, not when training reaches them (or silently misbehaves)."""
    value = getattr(config, name)
    if value is not None and not ok(value):
        raise ValueError(f"{section}.{name}={short_repr(value)} must be {what}")


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _at_least_one(value: int) -> bool:
    return value >= 1


@dataclass(frozen=True)
class TokenizerConfig:
    kind: Literal["char", "sentencepiece"] = "sentencepiece"
    vocab_size: int = 128  # SentencePiece only; characters take what the text holds
    model_type: Literal["unigram", "bpe"] = "unigram"

    def __post_init__(self) -> None:
        _check("tokenizer", self, "vocab_size", _at_least_one, ">= 1")


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

    def __post_init__(self) -> None:
        _check("data", self, "max_batch_seconds", _positive, "> 0")
        _check("data", self, "min_duration", _non_negative, ">= 0")
        _check("data", self, "max_duration", lambda v: v > self.min_duration, "> data.min_duration")
        _check("data", self, "num_workers", _non_negative, ">= 0")
        _check("data", self, "num_buckets", _at_least_one, ">= 1")
        _check("data", self, "speed_perturb", lambda v: all(f > 0 for f in v), "factors > 0")


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

    def __post_init__(self) -> None:
        # the schedules' own bounds (squeezer.training.schedule), checked before any data loads
        _check("optim", self, "peak_lr", _positive, "> 0")
        _check("optim", self, "betas", lambda v: all(0 <= b < 1 for b in v), "in [0, 1)")
        _check("optim", self, "weight_decay", _non_negative, ">= 0")
        _check("optim", self, "warmup_steps", _at_least_one, ">= 1")
        _check("optim", self, "hold_steps", _non_negative, ">= 0")
        _check("optim", self, "decay_rate", _non_negative, ">= 0")
        _check("optim", self, "min_lr", lambda v: 0 <= v <= self.peak_lr, "in [0, optim.peak_lr]")
        _check("optim", self, "grad_clip", _positive, "> 0")
        _check("optim", self, "accumulate", _at_least_one, ">= 1")


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

    def __post_init__(self) -> None:
        for name in ("epochs", "max_steps", "log_every", "checkpoint_every", "keep_last",
                     "average_last", "max_bad_steps"):  # fmt: skip
            _check("run", self, name, _at_least_one, ">= 1")
        _check("run", self, "max_minutes", _positive, "> 0")
        # seed + rank seeds torch, numpy and random: all take a non-negative 64-bit integer
        _check("run", self, "seed", lambda v: 0 <= v < 2**63, "in [0, 2**63)")
        _check("run", self, "ema_decay", lambda v: 0 <= v < 1, "in [0, 1) (0: off)")
        _check("run", self, "device", lambda v: v in ("auto", "cuda", "cpu"), "auto, cuda or cpu")


Vocabulary = Literal["keep", "new"]
FrozenPart = Literal["none", "encoder"]
NormStatistics = Literal["update", "keep"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning: start from a trained model, as NeMo's `init_from_nemo_model` does.

    - init: a squeezer model directory or a NeMo `.nemo` CTC file (`squeezer train --init PATH`
      sets it; in a recipe, relative to the recipe file). None: train from scratch. Its encoder,
      CTC head and frontend settings (`FeatureConfig`, `nemo_compat` included, so training
      features are the ones inference computes) become the run's.
    - vocabulary: "keep" the model's tokenizer and CTC head (every training transcript must be
      encodable with that vocabulary), or "new": train a tokenizer on the training text as the
      `tokenizer:` section says and put a fresh CTC head of its size on the loaded encoder
      (NeMo's `change_vocabulary`). With "keep" the `tokenizer:` section is not used.
    - freeze: "none", or "encoder": the encoder (subsampling and every block: everything but the
      CTC head, since the log-mel frontend has no weights) does not train for the first
      `freeze_steps` optimiser steps. Frozen as NeMo's `freeze()`: no gradient, so AdamW leaves
      its weights, moments and weight decay alone (bit-identical), and eval mode, so dropout is
      off and BatchNorm uses and keeps its running statistics. Then it trains like the rest
      (its AdamW moments start from zero then).
    - freeze_steps: optimiser steps the `freeze` part stays frozen (>= 1 with a `freeze`).
    - norm_statistics: "update" BatchNorm's running statistics on the fine-tuning batches (as
      training does), or "keep" the loaded model's for the whole run (its BatchNorm layers
      normalise with them in training too). A few minutes of one new voice group otherwise
      pull them to that group: 20 steps at LR 2e-5 took the demo model's CER on the voices it
      knew from 17.1 to 20.6 % (README, Fine-tuning).

    A lower learning rate for fine-tuning is `optim.peak_lr` (with a short `optim.warmup_steps`).
    `--resume` continues a fine-tuning run from its checkpoint with the settings it recorded;
    `init` is applied only when a run starts.
    """

    init: str | None = None
    vocabulary: Vocabulary = "keep"
    freeze: FrozenPart = "none"
    freeze_steps: int = 0
    norm_statistics: NormStatistics = "update"

    def __post_init__(self) -> None:
        for name, kind in (("vocabulary", Vocabulary), ("freeze", FrozenPart),
                           ("norm_statistics", NormStatistics)):  # fmt: skip
            if getattr(self, name) not in get_args(kind):
                allowed = ", ".join(get_args(kind))
                raise ValueError(f"finetune.{name}={getattr(self, name)!r} is not one of {allowed}")
        if self.freeze_steps < 0:
            raise ValueError(f"finetune.freeze_steps={self.freeze_steps} must be >= 0")
        if self.freeze != "none" and self.freeze_steps == 0:
            raise ValueError(f"finetune.freeze={self.freeze} needs finetune.freeze_steps >= 1")
        if self.freeze == "none" and self.freeze_steps:
            raise ValueError(
                f"finetune.freeze_steps={self.freeze_steps} needs a finetune.freeze part"
            )


@dataclass(frozen=True)
class TrainConfig:
    """A recipe. The architecture is `encoder`, else the preset `model`; `features` None is the
    default `FeatureConfig`. When fine-tuning (`finetune.init` set), None in `model`, `encoder`
    and `features` means the init model's (`load_recipe` sets the sections a recipe leaves out
    to None); a section that is set must agree with the init model field by field."""

    model: str | None = "squeezeformer-xs"
    encoder: EncoderConfig | None = None  # overrides `model` when given
    features: FeatureConfig | None = field(default_factory=FeatureConfig)
    spec_augment: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def encoder_config(self) -> EncoderConfig:
        if self.encoder is not None:
            return self.encoder
        if self.model is None:
            raise ValueError("set either model (a preset name) or encoder (a full config)")
        return EncoderConfig.preset(self.model)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(to_mapping(self), sort_keys=False))


def _absolute(path: str, base: Path, name: str) -> str:
    """`path` resolved against `base`; ValueError naming the setting for a path the OS cannot
    take (a NUL byte, a symlink loop)."""
    try:
        return str((base / path).resolve())
    except (OSError, RuntimeError, ValueError) as error:
        raise ValueError(f"{name}: cannot use {short_repr(path)} as a path ({error})") from None


def _resolve_paths(config: TrainConfig, base: Path) -> TrainConfig:
    # Set directly, not through `--set data.train=PATH`: a path is not YAML (": " or " #" in a
    # folder name would parse as a mapping or a comment).
    def resolve(path: str | None, name: str) -> str | None:
        if not path or Path(path).is_absolute():  # an absolute manifest path stays as written
            return path
        return _absolute(path, base, name)

    data = config.data
    train, dev = resolve(data.train, "data.train"), resolve(data.dev, "data.dev")
    return replace(config, data=replace(data, train=train, dev=dev))


def _resolve_init(config: TrainConfig, base: Path, init: str | Path | None) -> TrainConfig:
    """finetune.init made absolute: `init` (the command line's) against the working folder, a
    recipe's own against the recipe's folder."""
    if init is not None:
        path = _absolute(str(init), Path.cwd(), "--init")
    elif config.finetune.init is not None:
        path = _absolute(config.finetune.init, base, "finetune.init")  # an absolute one too
    else:
        return config
    return replace(config, finetune=replace(config.finetune, init=path))


def _leave_architecture_to_init(config: TrainConfig, given: set[str]) -> TrainConfig:
    """Sections a fine-tuning recipe leaves out come from the init model, not from defaults."""
    absent = {name: None for name in ("model", "features") if name not in given}
    return replace(config, **absent)


def packaged_recipes() -> dict[str, Path]:
    """The recipes shipped inside the package, by name: `tiny-synthetic`, `demo/squeezeformer`."""
    return {
        path.relative_to(PACKAGED_RECIPES).with_suffix("").as_posix(): path
        for path in sorted(PACKAGED_RECIPES.rglob("*.yaml"))
    }


def find_recipe(name: str | Path) -> Path:
    """A recipe file: `name` itself if it is a file, else the packaged recipe of that name
    (with or without `.yaml`), so an installed `squeezer` trains from any folder.

    Raises:
        FileNotFoundError: neither, in one line that lists the packaged names.
    """
    path = Path(name)
    if path.is_file():
        return path
    packaged = packaged_recipes()
    found = packaged.get(str(name).removesuffix(".yaml"))
    if found is None:
        raise FileNotFoundError(
            f"{name}: no such recipe (neither a file nor a packaged recipe: {', '.join(packaged)})"
        )
    return found


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, init: str | Path | None = None
) -> TrainConfig:
    """Read a recipe YAML, apply overrides, resolve manifest paths against the file's folder.

    `path` is a file or the name of a packaged recipe (`find_recipe`); a packaged recipe's
    relative paths resolve against the working folder, since the package's is not the user's.

    `init` (`squeezer train --init`) sets finetune.init; when fine-tuning, `model` and
    `features` the recipe and overrides leave out become None (the init model's).

    Any problem is one ValueError of one line (FileNotFoundError for a missing recipe): one in
    the file starts with its path and names the key (`r.yaml: optim.peak_lr: expected a
    number, got 'abc'`); a bad `--set` names its key. The file is read as plain YAML data, so
    tags such as `!!python/object` are refused, never run.
    """
    path = find_recipe(path)
    # A packaged recipe's data paths are the user's working tree, not the installed package's.
    base = Path.cwd() if path.is_relative_to(PACKAGED_RECIPES) else path.parent
    values: Any = read_yaml(path)
    if values is None:  # an empty file (or only comments): every default
        values = {}
    if not isinstance(values, dict):
        raise ValueError(
            f"{path}: expected a mapping of sections (model, data, optim, ...), "
            f"got {'a list' if isinstance(values, list) else type(values).__name__}"
        )
    try:
        config = from_mapping(TrainConfig, values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    config = apply_overrides(config, overrides or [])  # its errors name the --set key
    try:
        config = _resolve_init(config, base, init)
        if config.finetune.init is not None:
            given = set(values) | {
                item.partition("=")[0].strip().split(".")[0] for item in overrides or []
            }
            config = _leave_architecture_to_init(config, given)
        # Fail now on a bad preset name, not after loading. Neither model nor encoder is
        # legitimate here: --resume of a fine-tuning run takes the checkpoint's architecture
        # (a run from scratch without either stops when it builds its model).
        if config.model is not None or config.encoder is not None:
            config.encoder_config()
        if not config.data.train:
            raise ValueError("data.train (the training manifest) is required")
        optim, steps = config.optim, config.run.max_steps
        too_few = steps is not None and steps <= optim.warmup_steps + optim.hold_steps
        if optim.schedule == "cosine" and too_few:  # the cosine would never start
            raise ValueError(
                f"run.max_steps={steps} must exceed optim.warmup_steps + optim.hold_steps "
                f"({optim.warmup_steps + optim.hold_steps}) for the cosine schedule"
            )
        return _resolve_paths(config, base)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
