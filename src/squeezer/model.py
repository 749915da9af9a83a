"""AsrModel: log-mel frontend + `SequenceEncoder` + CTC head, and the model directory on disk.

A model directory holds `config.yaml` (encoder and frontend settings, vocabulary size),
`model.safetensors` (the weights) and the tokenizer's files. Loading one never unpickles
anything. The model knows neither the `.nemo` importer nor transcription: `squeezer.loading`
and `squeezer.transcribe` use it, never the reverse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.features import FeatureConfig, LogMelFrontend
from squeezer.nn.encoder import SequenceEncoder
from squeezer.nn.heads import CtcHead, CtcOutput
from squeezer.structured import from_mapping, to_mapping
from squeezer.text import Tokenizer, load_tokenizer

__all__ = [
    "MODEL_FORMAT",
    "AsrModel",
    "load_model_directory",
    "model_settings",
    "read_settings",
    "save_model",
]

MODEL_FORMAT = "squeezer-ctc-v1"
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"


class AsrModel(nn.Module):
    """Waveforms or features -> per-frame CTC log-probabilities (blank at index 0).

    Args:
        config: the encoder's configuration.
        vocab_size: number of tokens, not counting the blank (the paper uses 128).
        features: the log-mel frontend's settings (used by `log_probs` on waveforms).
    """

    def __init__(
        self, config: EncoderConfig, vocab_size: int, features: FeatureConfig | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.frontend = LogMelFrontend(features or FeatureConfig())
        self.encoder = SequenceEncoder(config)
        self.ctc_head = CtcHead(config.d_model, vocab_size)
        self.tokenizer: Tokenizer | None = None  # attached by `load_model`

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.ctc_head.linear.weight.device

    def output_lengths(self, feature_lengths: torch.Tensor) -> torch.Tensor:
        """Encoder output frames for `feature_lengths` feature frames."""
        return self.encoder.output_lengths(feature_lengths)

    def frames_for_samples(self, samples: torch.Tensor) -> torch.Tensor:
        """Encoder output frames for audio of `samples` samples (B,)."""
        return self.output_lengths(self.frontend.output_lengths(samples))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> CtcOutput:
        """features (B, T, F), lengths (B,) -> CtcOutput(log_probs (B, T', V + 1), lengths)."""
        encoded, out_lengths = self.encoder(features, lengths)
        return CtcOutput(self.ctc_head(encoded), out_lengths)

    def log_probs(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> CtcOutput:
        """waveforms (B, N) float32 at 16 kHz, lengths (B,) samples -> CtcOutput."""
        features, feature_lengths = self.frontend(waveforms, lengths)
        return self(features, feature_lengths)


def model_settings(model: AsrModel) -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "vocab_size": model.vocab_size,
        "encoder": to_mapping(model.config),
        "features": to_mapping(model.frontend.config),
    }


def save_model(model: AsrModel, directory: str | Path, tokenizer: Tokenizer) -> Path:
    """Write a model directory: config.yaml, model.safetensors and the tokenizer's files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens, the model's head {model.vocab_size}"
        )
    tokenizer.save(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    temporary = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(temporary), metadata={"format": MODEL_FORMAT})
    os.replace(temporary, directory / WEIGHTS_FILE)
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(model_settings(model), sort_keys=False))
    return directory


def read_settings(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file (is {directory} a squeezer model directory?)"
        )
    settings = yaml.safe_load(path.read_text())
    if not isinstance(settings, dict) or settings.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a {MODEL_FORMAT} model config")
    return settings


def load_model_directory(directory: str | Path, device: str | torch.device = "cpu") -> AsrModel:
    """Read a model directory written by `save_model` (or `squeezer train`); eval mode,
    tokenizer attached. `squeezer.load_model` also takes `.nemo` files."""
    directory = Path(directory)
    settings = read_settings(directory)
    encoder = from_mapping(EncoderConfig, settings["encoder"], "encoder")
    features = from_mapping(FeatureConfig, settings["features"], "features")
    model = AsrModel(encoder, int(settings["vocab_size"]), features)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such file")
    try:
        state = load_file(str(weights))
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{weights}: not a readable safetensors file ({error})") from error
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of the wrong shape
        first = str(error).strip().splitlines()[-1].strip()
        raise ValueError(f"{weights}: weights do not fit the config ({first})") from None
    if missing or unexpected:
        raise ValueError(f"{weights}: weights do not fit the config (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")  # fmt: skip
    model.tokenizer = load_tokenizer(directory)
    return model.to(device).eval()
