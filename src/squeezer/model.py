"""AsrModel: log-mel frontend + `SequenceEncoder` + CTC head, and the model directory on disk.

A model directory holds `config.yaml` (encoder and frontend settings, vocabulary size),
`model.safetensors` (the weights) and the tokenizer's files. Loading one never unpickles
anything, and a directory that is not what `save_model` wrote (a damaged or foreign file, a
config that does not match its weights) is one ValueError of one line naming the file, and the
tensor or key when there is one. The model knows neither the `.nemo` importer nor
transcription: `squeezer.loading` and `squeezer.transcribe` use it, never the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.features import FeatureConfig, LogMelFrontend
from squeezer.files import replaced_atomically
from squeezer.nn.encoder import SequenceEncoder
from squeezer.nn.heads import CtcHead, CtcOutput
from squeezer.structured import from_mapping, read_yaml, short_repr, to_mapping
from squeezer.text import TOKENIZER_FILE, Tokenizer, load_tokenizer
from squeezer.weights import MISFIT, check_weights, reason, stored_tensors

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
    with replaced_atomically(directory / WEIGHTS_FILE) as temporary:
        save_file(state, str(temporary), metadata={"format": MODEL_FORMAT})
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(model_settings(model), sort_keys=False))
    return directory


def read_settings(directory: Path) -> dict[str, Any]:
    """The mapping in `directory`'s config.yaml, checked to be a squeezer model's (its format);
    ValueError naming the file otherwise, FileNotFoundError when there is none."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file (is {directory} a squeezer model directory?)"
        )
    settings = read_yaml(path)
    if not isinstance(settings, dict):
        got = "null" if settings is None else type(settings).__name__
        raise ValueError(f"{path}: not a {MODEL_FORMAT} model config (a {got}, not a mapping)")
    if settings.get("format") != MODEL_FORMAT:
        got = short_repr(settings.get("format"))
        raise ValueError(f"{path}: not a {MODEL_FORMAT} model config (format: {got})")
    return settings


# What `model_settings` writes; `squeezer export` adds the names of its graphs.
_SETTINGS = ("format", "vocab_size", "encoder", "features")
_EXPORT_SETTINGS = ("onnx",)


def _architecture(directory: Path) -> tuple[EncoderConfig, FeatureConfig, int]:
    """Encoder, frontend and vocabulary size from config.yaml, every key and type checked."""
    path = directory / CONFIG_FILE
    settings = read_settings(directory)
    unknown = [key for key in settings if key not in (*_SETTINGS, *_EXPORT_SETTINGS)]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(map(short_repr, unknown[:5]))}")
    missing = [key for key in _SETTINGS if key not in settings]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
    vocab_size = settings["vocab_size"]
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        got = short_repr(vocab_size)
        raise ValueError(f"{path}: vocab_size: expected a positive integer, got {got}")
    try:
        encoder = from_mapping(EncoderConfig, settings["encoder"], "encoder")
        features = from_mapping(FeatureConfig, settings["features"], "features")
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if features.n_mels != encoder.input_dim:  # it would load, then fail on the first audio
        raise ValueError(
            f"{path}: features.n_mels={features.n_mels}, but the encoder takes "
            f"input_dim={encoder.input_dim} features"
        )
    return encoder, features, vocab_size


def _expected_tensors(
    encoder: EncoderConfig, features: FeatureConfig, vocab_size: int, config_path: Path
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor `AsrModel(encoder, vocab_size, features)` saves.

    The encoder and head are built on the meta device: no memory is allocated and nothing is
    initialised, so a config whose sizes are absurd costs nothing before it is refused.
    """
    try:
        with torch.device("meta"):
            parts = {
                "encoder": SequenceEncoder(encoder),
                "ctc_head": CtcHead(encoder.d_model, vocab_size),
            }
    except Exception as error:  # sizes that torch cannot hold fail in torch, in many ways
        first = " ".join(str(error).splitlines()[0].split())[:120]
        raise ValueError(f"{config_path}: the encoder cannot be built ({first})") from None
    parts["frontend"] = LogMelFrontend(features)  # its filters are computed, not stored
    return {
        f"{prefix}.{name}": (tuple(tensor.shape), tensor.dtype)
        for prefix, module in parts.items()
        for name, tensor in module.state_dict().items()
    }


def load_model_directory(directory: str | Path, device: str | torch.device = "cpu") -> AsrModel:
    """Read a model directory written by `save_model` (or `squeezer train`); eval mode,
    tokenizer attached. `squeezer.load_model` also takes `.nemo` files.

    Everything is checked before a weight is allocated: config.yaml's keys and types, then
    model.safetensors' header against the tensors that config needs (names, shapes, dtypes),
    then its values (finite), then the tokenizer's size against the CTC head. Any mismatch is
    a one-line ValueError naming the file and the tensor or key.

    Dtypes: a tensor is read only where the conversion changes no value. float16 and bfloat16
    weights widen exactly into float32 and load; float64 weights (which would be rounded),
    integer, bool or complex weights, and a float BatchNorm counter are refused, naming the
    tensor and its dtype. NeMo and transformers cast such tensors silently; a file holding them
    was not written by `save_model`, so it is more likely damaged or foreign than meant.
    """
    directory = Path(directory)
    config, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    encoder, features, vocab_size = _architecture(directory)
    stored = stored_tensors(weights)
    if encoder.num_layers > len(stored):
        # Every block stores tensors, so this cannot match; and building a million blocks
        # takes minutes even on the meta device.
        raise ValueError(
            f"{weights}: {MISFIT}: {len(stored)} tensors, too few for "
            f"encoder.num_layers={encoder.num_layers}"
        )
    check_weights(weights, stored, _expected_tensors(encoder, features, vocab_size, config))
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as error:  # the header parsed, the data did not
        raise ValueError(f"{weights}: not a readable safetensors file ({reason(error)})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{weights}: tensor {name} holds NaN or infinite values")
    model = AsrModel(encoder, vocab_size, features)
    model.load_state_dict(state, strict=True)  # names and shapes were checked above
    tokenizer = load_tokenizer(directory)
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(
            f"{directory / TOKENIZER_FILE}: {tokenizer.vocab_size} tokens, but {config} says "
            f"vocab_size={vocab_size}"
        )
    model.tokenizer = tokenizer
    return model.to(device).eval()
