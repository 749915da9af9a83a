"""An exported model in ONNX Runtime, behind the same interface as `AsrModel`.

    model = load_onnx_model("export/")            # model.onnx (or int8=True: model.int8.onnx)
    model.log_probs(waveforms, lengths)           # frontend in torch, encoder + head in ORT

`squeezer transcribe/evaluate --backend onnx` use it, so an exported model is scored exactly
like a PyTorch one: same frontend, same decoding, only the network runs elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from squeezer.config import EncoderConfig
from squeezer.export import FRONTEND_FILE, ONNX_FILE, ONNX_INT8_FILE, TOKENS_FILE
from squeezer.features import FeatureConfig, LogMelFrontend
from squeezer.model import read_settings
from squeezer.nn.encoder import SequenceEncoder
from squeezer.nn.heads import CtcOutput
from squeezer.structured import from_mapping
from squeezer.text import Tokenizer, load_tokenizer

__all__ = ["SHERPA_LEAD_SAMPLES", "OnnxCtcModel", "SherpaRecognizer", "load_onnx_model",
           "sherpa_transcribe"]  # fmt: skip

# sherpa-onnx centres its feature frame t 5 ms (80 samples) later than squeezer's default
# frontend and NeMo's do: this many leading zero samples realign them for such a model (README,
# Deployment). A model trained with `features.sherpa_compat` needs none.
SHERPA_LEAD_SAMPLES = 80


class OnnxCtcModel:
    """Waveforms or features -> CTC log-probs (blank at index 0), the network in ONNX Runtime.

    Duck-types the parts of `AsrModel` that transcription and evaluation use.

    Args:
        session: an `onnxruntime.InferenceSession` of a graph written by `export_onnx`.
        config: the encoder's configuration (for output lengths without running the graph).
        vocab_size: tokens without the blank.
        features: the log-mel frontend's settings.
    """

    def __init__(
        self, session, config: EncoderConfig, vocab_size: int, features: FeatureConfig
    ) -> None:
        self.session = session
        self.config = config
        self.vocab_size = vocab_size
        self.frontend = LogMelFrontend(features).eval()
        with torch.device("meta"):  # only its length arithmetic is used: no weights
            self._encoder = SequenceEncoder(config)
        self.tokenizer: Tokenizer | None = None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def output_lengths(self, feature_lengths: torch.Tensor) -> torch.Tensor:
        return self._encoder.output_lengths(feature_lengths)

    def frames_for_samples(self, samples: torch.Tensor) -> torch.Tensor:
        return self.output_lengths(self.frontend.output_lengths(samples))

    def __call__(self, features: torch.Tensor, lengths: torch.Tensor) -> CtcOutput:
        """features (B, T, F), lengths (B,) -> CtcOutput(log_probs (B, T', V + 1), lengths)."""
        inputs = {
            "audio_signal": features.detach().cpu().transpose(1, 2).contiguous().numpy(),
            "length": lengths.detach().cpu().numpy().astype(np.int64),
        }
        log_probs, out_lengths = self.session.run(None, inputs)  # blank last
        log_probs = torch.from_numpy(log_probs)
        log_probs = torch.cat([log_probs[..., -1:], log_probs[..., :-1]], dim=-1)  # blank first
        return CtcOutput(log_probs, torch.from_numpy(out_lengths))

    def log_probs(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> CtcOutput:
        """waveforms (B, N) float32 at 16 kHz, lengths (B,) samples -> CtcOutput."""
        features, feature_lengths = self.frontend(waveforms.cpu(), lengths.cpu())
        return self(features, feature_lengths)


def load_onnx_model(directory: str | Path, int8: bool = False, threads: int = 0) -> OnnxCtcModel:
    """Open an export folder written by `export_onnx` in ONNX Runtime (CPU)."""
    import onnxruntime

    directory = Path(directory)
    settings = read_settings(directory)
    graph = directory / (ONNX_INT8_FILE if int8 else ONNX_FILE)
    if not graph.is_file():
        hint = " (export with --int8)" if int8 else ""
        raise FileNotFoundError(f"{graph}: no such file; write it with `squeezer export`{hint}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    # ORT's idle threads busy-wait for the next run by default; between runs the frontend runs
    # in torch on the same cores, and the spinning took them: end to end on the demo test split
    # (one file at a time) RTF 0.0067 spinning against 0.0045 not (PyTorch 0.0063).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(
            str(graph), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # ONNX Runtime raises its own exception types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{graph}: ONNX Runtime cannot load this graph ({reason})") from None
    encoder = from_mapping(EncoderConfig, settings["encoder"], "encoder")
    features = from_mapping(FeatureConfig, settings["features"], "features")
    model = OnnxCtcModel(session, encoder, int(settings["vocab_size"]), features)
    statistics = directory / FRONTEND_FILE
    if model.frontend.state_dict() and not statistics.is_file():
        raise FileNotFoundError(f"{statistics}: no such file (normalize='global' needs it)")
    if statistics.is_file():
        model.frontend.load_state_dict(load_file(str(statistics)))
    model.tokenizer = load_tokenizer(directory)
    return model


class SherpaRecognizer:
    """sherpa-onnx's offline recognizer on an export folder, as a NeMo CTC model (greedy)."""

    def __init__(self, directory: str | Path, threads: int = 1) -> None:
        import sherpa_onnx

        from squeezer.audio import SAMPLE_RATE

        directory = Path(directory)
        settings = read_settings(directory)
        features = from_mapping(FeatureConfig, settings["features"], "features")
        self.recognizer = sherpa_onnx.OfflineRecognizer.from_nemo_ctc(
            model=str(directory / ONNX_FILE), tokens=str(directory / TOKENS_FILE),
            feature_dim=int(settings["encoder"]["input_dim"]), sample_rate=SAMPLE_RATE,
            num_threads=threads, decoding_method="greedy_search",
        )  # fmt: skip
        lead = 0 if features.sherpa_compat else SHERPA_LEAD_SAMPLES
        self.lead = np.zeros(lead, dtype=np.float32)

    def transcribe(self, paths: list[str | Path]) -> list[str]:
        """Greedy text of each file (sherpa-onnx computes the features itself)."""
        from squeezer.audio import SAMPLE_RATE, load_audio

        texts = []
        for path in paths:
            stream = self.recognizer.create_stream()
            stream.accept_waveform(SAMPLE_RATE, np.concatenate([self.lead, load_audio(path)]))
            self.recognizer.decode_stream(stream)
            texts.append(stream.result.text)
        return texts


def sherpa_transcribe(
    directory: str | Path, paths: list[str | Path], threads: int = 1
) -> list[str]:
    """Greedy text of each file from sherpa-onnx on an export folder (its own features)."""
    return SherpaRecognizer(directory, threads).transcribe(paths)
