"""SequenceModel: [PairBias] + `SequenceEncoder` + the task's head, and its model directory.

    ctc       features (B, T, F) -> log-probabilities (B, T', V + 1), blank at 0
    classify  features (B, T, F) -> logits (B, C), pooled over the real positions
    regress   features (B, T, F) -> values (B, T, K), zero at padding (no subsampling)
    value     features (B, T, F) -> values (B, K), pooled (extrinsic regression)

With pair matrices (B, C, T, T), a `PairBias` CNN turns them into one attention bias per head,
added in every block (the encoder pools it to the U-Net's half rate).

A model directory holds `config.yaml` (format `squeezer-sequence-v1`: the task, the encoder,
the head, the output size and the pair channels), `model.safetensors`, the training split's
`feature_stats.json`, and the task's vocabulary: `labels.json` (classify) or `characters.json`
(ctc). Loading checks all of it, as `squeezer.model` does for speech models,
before a weight is allocated; anything wrong is one ValueError naming the file.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.files import replaced_atomically
from squeezer.nn.dropout import Dropout
from squeezer.nn.encoder import SequenceEncoder
from squeezer.nn.heads import CtcHead
from squeezer.nn.pair_bias import PairBias
from squeezer.nn.pooling import GeMPool, MeanPool
from squeezer.nn.position_head import PositionHead
from squeezer.sequences.dataset import Characters, LabelMap
from squeezer.sequences.manifest import TASKS, TaskKind
from squeezer.sequences.normalize import FeatureStats
from squeezer.sequences.recipe import HeadConfig
from squeezer.structured import from_mapping, read_yaml, short_repr, to_mapping
from squeezer.weights import check_weights, reason, stored_tensors

__all__ = [
    "SEQUENCE_FORMAT",
    "SequenceAssets",
    "SequenceModel",
    "SequenceOutput",
    "describe_folder",
    "load_assets",
    "load_sequence_model",
    "save_sequence_model",
]

SEQUENCE_FORMAT = "squeezer-sequence-v1"
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"


class SequenceOutput(NamedTuple):
    """values: log-probs (B, T', V + 1), logits (B, C) or values (B, T, K); lengths (B,)."""

    values: torch.Tensor
    lengths: torch.Tensor


class SequenceModel(nn.Module):
    """The encoder with one task's head (see the module's docstring).

    Args:
        task: "ctc", "classify" or "regress".
        config: the encoder's configuration (input_dim = features per position).
        outputs: tokens without the blank (ctc), classes (classify) or targets (regress).
        head: the head's settings.
        pair_channels: C of the pair matrices the model takes; 0: none.
    """

    def __init__(
        self,
        task: TaskKind,
        config: EncoderConfig,
        outputs: int,
        head: HeadConfig | None = None,
        pair_channels: int = 0,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task={task!r} is not one of {', '.join(TASKS)}")
        if outputs < 1:
            raise ValueError(f"outputs={outputs} must be positive")
        if task == "regress" and config.subsampling != "none":
            raise ValueError("a regress model predicts per input position: subsampling=none")
        if pair_channels and config.subsampling != "none":
            # the bias is one value per pair of input positions; the blocks see subsampled ones
            raise ValueError("pair matrices need encoder.subsampling=none")
        head = head or HeadConfig()
        self.task, self.config, self.outputs, self.head_config = task, config, outputs, head
        self.pair_channels = pair_channels
        self.pair_bias = None
        if pair_channels:
            self.pair_bias = PairBias(pair_channels, config.num_heads, hidden=head.pair_hidden,
                                      kernel_size=head.pair_kernel,
                                      num_layers=head.pair_layers)  # fmt: skip
        self.encoder = SequenceEncoder(config)
        if task == "ctc":
            self.head = CtcHead(config.d_model, outputs)
        elif task in ("classify", "value"):
            self.pool = MeanPool() if head.pooling == "mean" else GeMPool()
            self.dropout = Dropout(config.dropout)
            self.head = nn.Linear(config.d_model, outputs)
        else:
            self.head = PositionHead(config.d_model, outputs, gru_hidden=head.gru_hidden)
        if task == "value":
            # The training split's target mean and scale (set by the trainer, saved with the
            # weights): the head learns standardised values, the model answers in the data's.
            self.register_buffer("target_mean", torch.zeros(outputs))
            self.register_buffer("target_std", torch.ones(outputs))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder output positions for `lengths` input positions."""
        return self.encoder.output_lengths(lengths)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, pair: torch.Tensor | None = None
    ) -> SequenceOutput:
        """features (B, T, F), lengths (B,), pair (B, C, T, T) when the model takes one."""
        if (pair is None) != (self.pair_bias is None):
            wanted = (
                f"pair matrices of {self.pair_channels} channel(s)"
                if self.pair_channels
                else "none"
            )
            raise ValueError(f"this model takes {wanted} as its pair input")
        bias = None if self.pair_bias is None else self.pair_bias(pair, lengths)  # (B, H, T, T)
        encoded, out_lengths = self.encoder(features, lengths, attn_bias=bias)  # (B, T', D)
        if self.task == "ctc":
            return SequenceOutput(self.head(encoded), out_lengths)
        if self.task in ("classify", "value"):
            pooled = self.pool(encoded, out_lengths)  # (B, D)
            out = self.head(self.dropout(pooled)).float()  # (B, C) logits or (B, K) values
            if self.task == "value":
                out = out * self.target_std + self.target_mean
            return SequenceOutput(out, out_lengths)
        return SequenceOutput(self.head(encoded, out_lengths).float(), out_lengths)


@dataclass
class SequenceAssets:
    """What a sequence model needs beside its weights: the training split's feature statistics
    (None: features as stored) and the task's vocabulary (`LabelMap` or character tokenizer)."""

    stats: FeatureStats | None
    labels: LabelMap | None = None
    tokenizer: Characters | None = None
    nan_to: float | None = None

    def save(self, directory: Path) -> None:
        if self.stats is not None:
            self.stats.save(directory)
        if self.labels is not None:
            self.labels.save(directory)
        if self.tokenizer is not None:
            self.tokenizer.save(directory)


def settings(model: SequenceModel, assets: SequenceAssets) -> dict[str, Any]:
    """config.yaml's mapping: everything that rebuilds the model."""
    return {
        "format": SEQUENCE_FORMAT,
        "task": model.task,
        "outputs": model.outputs,
        "pair_channels": model.pair_channels,
        "normalized": assets.stats is not None,
        "nan_to": assets.nan_to,
        "encoder": to_mapping(model.config),
        "head": to_mapping(model.head_config),
    }


def model_from_settings(values: dict[str, Any], where: str = "settings") -> SequenceModel:
    """Build (not load) the model a config.yaml or a checkpoint's settings describe."""
    return _build(*_architecture(values, where), device=None)


def save_sequence_model(
    model: SequenceModel, assets: SequenceAssets, directory: str | Path
) -> Path:
    """Write a model directory (see the module's docstring); the weights file atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    assets.save(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with replaced_atomically(directory / WEIGHTS_FILE) as temporary:
        save_file(state, str(temporary), metadata={"format": SEQUENCE_FORMAT})
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(settings(model, assets), sort_keys=False))
    return directory


_KEYS = ("format", "task", "outputs", "pair_channels", "normalized", "nan_to", "encoder", "head")
_EXPORT_KEYS = ("onnx", "tflite")  # `squeezer export` records its files


def _architecture(values: Any, where: str) -> tuple:
    if not isinstance(values, dict) or values.get("format") != SEQUENCE_FORMAT:
        got = short_repr(values.get("format")) if isinstance(values, dict) else "not a mapping"
        raise ValueError(f"{where}: not a {SEQUENCE_FORMAT} model config (format: {got})")
    unknown = [key for key in values if key not in (*_KEYS, *_EXPORT_KEYS)]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(short_repr, unknown[:5]))}")
    missing = [key for key in _KEYS if key not in values]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    task = values["task"]
    if task not in TASKS:
        raise ValueError(f"{where}: task: {short_repr(task)} is not one of {', '.join(TASKS)}")
    for key in ("outputs", "pair_channels"):
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (key == "outputs"):
            raise ValueError(f"{where}: {key}: expected an integer >= 0, got {short_repr(value)}")
    try:
        encoder = from_mapping(EncoderConfig, values["encoder"], "encoder")
        head = from_mapping(HeadConfig, values["head"], "head")
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return task, encoder, values["outputs"], head, values["pair_channels"]


def _build(task, encoder, outputs, head, pair_channels, device) -> SequenceModel:
    with torch.device(device) if device is not None else nullcontext():
        return SequenceModel(task, encoder, outputs, head, pair_channels)


def read_model_config(directory: str | Path) -> dict[str, Any]:
    """config.yaml of a sequence model directory, checked to be one."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (is {directory} a model directory?)")
    values = read_yaml(path)
    _architecture(values, str(path))
    return values


def describe_folder(directory: str | Path) -> tuple[dict[str, Any], SequenceModel, SequenceAssets]:
    """An export folder (a model directory without weights): its config.yaml, the model it
    describes built on the meta device (sizes, task; no memory), and its checked assets."""
    directory = Path(directory)
    values = read_model_config(directory)
    meta = _build(*_architecture(values, str(directory / CONFIG_FILE)), device="meta")
    return values, meta, load_assets(directory, meta, values)


def load_sequence_model(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[SequenceModel, SequenceAssets]:
    """Read a model directory written by `save_sequence_model`; eval mode.

    config.yaml's keys and types, then the weights' names, shapes and dtypes (from the file's
    header, against the model built on the meta device), then their values (finite), then the
    statistics and vocabulary against the model: each mismatch is one ValueError naming the file.
    """
    directory = Path(directory)
    config = directory / CONFIG_FILE
    values = read_model_config(directory)
    architecture = _architecture(values, str(config))
    weights = directory / WEIGHTS_FILE
    stored = stored_tensors(weights)
    try:
        meta = _build(*architecture, device="meta")
    except Exception as error:  # sizes torch cannot hold fail in torch, in many ways
        first = " ".join(str(error).splitlines()[0].split())[:120]
        raise ValueError(f"{config}: the model cannot be built ({first})") from None
    expected = {name: (tuple(t.shape), t.dtype) for name, t in meta.state_dict().items()}
    check_weights(weights, stored, expected)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{weights}: not a readable safetensors file ({reason(error)})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{weights}: tensor {name} holds NaN or infinite values")
    model = _build(*architecture, device=None)
    model.load_state_dict(state, strict=True)
    assets = load_assets(directory, model, values)
    return model.to(device).eval(), assets


def load_assets(directory: Path, model: SequenceModel, values: dict[str, Any]) -> SequenceAssets:
    """The statistics and vocabulary in `directory` that `values` (config.yaml's, or a
    checkpoint's settings) says `model` has, each checked against it."""
    stats = FeatureStats.load(directory) if values["normalized"] else None
    if stats is not None and len(stats.mean) != model.config.input_dim:
        raise ValueError(
            f"{directory}: feature statistics for {len(stats.mean)} features, the model takes "
            f"{model.config.input_dim}"
        )
    nan_to = values["nan_to"]
    if nan_to is not None and (isinstance(nan_to, bool) or not isinstance(nan_to, int | float)):
        raise ValueError(f"{directory / CONFIG_FILE}: nan_to: expected a number or null")
    assets = SequenceAssets(stats, nan_to=nan_to)
    if model.task == "classify":
        assets.labels = LabelMap.load(directory)
        if len(assets.labels) != model.outputs:
            raise ValueError(
                f"{directory}: {len(assets.labels)} class names, the model has {model.outputs}"
            )
    elif model.task == "ctc":
        assets.tokenizer = Characters.load(directory)
        if assets.tokenizer.vocab_size != model.outputs:
            raise ValueError(
                f"{directory}: {assets.tokenizer.vocab_size} characters, the model has "
                f"{model.outputs} outputs"
            )
    return assets
