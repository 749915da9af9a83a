"""Export a CTC model to ONNX, for ONNX Runtime and sherpa-onnx alike.

    squeezer export MODEL --out DIR [--int8]

MODEL is a model directory or a `.nemo` file. DIR then holds

- `model.onnx`: one graph in NeMo's CTC layout, which sherpa-onnx loads with
  `sherpa_onnx.OfflineRecognizer.from_nemo_ctc(model=..., tokens=...)`: inputs `audio_signal`
  (B, F, T) float32 log-mels and `length` (B,) int64 frames; outputs `logprobs` (B, T', V + 1)
  with the blank LAST (NeMo's and sherpa's convention; squeezer's is first) and
  `encoded_lengths` (B,) int64. Batch and time are dynamic. Its metadata carries what
  sherpa-onnx reads: vocab_size, subsampling_factor, normalize_type, model_type.
- `model.int8.onnx` (with --int8): the same graph with int8 weights (ONNX Runtime dynamic
  quantisation of the linear and convolution weights).
- `tokens.txt`: sherpa-onnx's symbol table (`symbol id` per line, `<blk>` last).
- `config.yaml` and the tokenizer's files: what squeezer's ONNX backend needs around the
  graph (frontend settings, encoder config for output lengths, tokenizer), and
  `frontend.safetensors` for a frontend with fitted statistics (normalize="global").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file
from torch import nn

from squeezer.files import replaced_atomically
from squeezer.model import CONFIG_FILE, AsrModel, model_settings
from squeezer.nn.tracing import quiet

__all__ = [
    "FRONTEND_FILE",
    "ONNX_FILE",
    "ONNX_INT8_FILE",
    "TOKENS_FILE",
    "ExportResult",
    "export_onnx",
]

log = logging.getLogger("squeezer.export")

ONNX_FILE = "model.onnx"
FRONTEND_FILE = "frontend.safetensors"  # fitted feature statistics (normalize="global") only
ONNX_INT8_FILE = "model.int8.onnx"
TOKENS_FILE = "tokens.txt"
OPSET = 18
INPUT_NAMES = ["audio_signal", "length"]
OUTPUT_NAMES = ["logprobs", "encoded_lengths"]
# The example traced at export: odd lengths, one of them short, so that no size is special.
EXAMPLE_FRAMES = (301, 173)


class NemoLayoutCtc(nn.Module):
    """An AsrModel with NeMo's CTC interface: (B, F, T) in, blank-last log-probs out."""

    def __init__(self, model: AsrModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, audio_signal: torch.Tensor, length: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """audio_signal (B, F, T), length (B,) -> logprobs (B, T', V + 1), lengths (B,)."""
        log_probs, lengths = self.model(audio_signal.transpose(1, 2), length)  # (B, T', V + 1)
        return torch.cat([log_probs[..., 1:], log_probs[..., :1]], dim=-1), lengths


@dataclass(frozen=True)
class ExportResult:
    """The export folder and the graphs written into it."""

    directory: Path
    graphs: list[Path]


def subsampling_factor(model: AsrModel) -> int:
    """Feature frames per output frame (4, or 8 under a reduction that is never recovered)."""
    frames = torch.tensor([4096])
    return round(int(frames[0]) / int(model.output_lengths(frames)[0]))


def sherpa_metadata(model: AsrModel) -> dict[str, str]:
    """The ONNX metadata sherpa-onnx's NeMo CTC loader reads (and what we add for ourselves)."""
    normalize = model.frontend.config.normalize
    if not model.frontend.config.sherpa_compat:  # (sherpa_compat itself allows only these two)
        unsupported = "" if normalize in ("per_feature", "none") else f" (normalize={normalize!r})"
        log.warning(
            "sherpa-onnx computes its own Kaldi-style features (kaldi-native-fbank), not this "
            "model's frontend%s: its text may differ on some files (ONNX Runtime through squeezer "
            "is exact). Train with features.sherpa_compat for identical features (README, "
            "Deployment)",
            unsupported,
        )
    return {
        "vocab_size": str(model.vocab_size + 1),  # with the blank, as NeMo's exports write it
        "subsampling_factor": str(subsampling_factor(model)),
        "normalize_type": "per_feature" if normalize == "per_feature" else "",
        "model_type": "EncDecCTCModelBPE",
        "is_giga_am": "0",
        "producer": "squeezer",
        "blank_index": str(model.vocab_size),
    }


def sherpa_tokens(tokens: list[str]) -> str:
    """tokens.txt for ids 0..V-1 (squeezer's ids 1..V), then the blank `<blk>` at V."""
    lines = [f"{token} {index}" for index, token in enumerate(tokens)]
    return "\n".join([*lines, f"<blk> {len(tokens)}"]) + "\n"


def _trace(model: AsrModel, path: Path) -> None:
    """torch.export the NeMo-layout wrapper with dynamic batch and time, then save the graph."""
    features = model.config.input_dim
    example = torch.zeros(len(EXAMPLE_FRAMES), features, max(EXAMPLE_FRAMES))
    lengths = torch.tensor(EXAMPLE_FRAMES)
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=2)
    with quiet():
        program = torch.onnx.export(
            NemoLayoutCtc(model).eval(), (example, lengths), dynamo=True,
            input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, opset_version=OPSET,
            dynamic_shapes={"audio_signal": {0: batch, 2: time}, "length": {0: batch}},
        )  # fmt: skip
    with replaced_atomically(path) as temporary:
        program.save(str(temporary))


def _add_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    with replaced_atomically(path) as temporary:
        onnx.save(graph, str(temporary))


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime dynamic quantisation: int8 weights of MatMul/Gemm (linear) and Conv."""
    with replaced_atomically(target) as temporary, quiet():  # it advises "pre-processing"
        _quantize(source, temporary)


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm", "Conv"],
    )  # fmt: skip


@torch.no_grad()
def export_onnx(model: AsrModel, out_dir: str | Path, int8: bool = False) -> ExportResult:
    """Write the ONNX graph(s), tokens.txt, config and tokenizer of `model` into `out_dir`."""
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; load it with squeezer.load_model(path)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    graphs = [out_dir / ONNX_FILE]
    _trace(model, graphs[0])
    _add_metadata(graphs[0], sherpa_metadata(model))
    if int8:
        graphs.append(out_dir / ONNX_INT8_FILE)
        quantize_int8(graphs[0], graphs[1])
    (out_dir / TOKENS_FILE).write_text(sherpa_tokens(model.tokenizer.tokens()), encoding="utf-8")
    model.tokenizer.save(out_dir)
    frontend_state = model.frontend.state_dict()
    if frontend_state:  # the graph starts at the features: their fitted statistics go beside it
        with replaced_atomically(out_dir / FRONTEND_FILE) as temporary:
            save_file({k: v.contiguous() for k, v in frontend_state.items()}, str(temporary))
    settings = {**model_settings(model), "onnx": [graph.name for graph in graphs]}
    (out_dir / CONFIG_FILE).write_text(yaml.safe_dump(settings, sort_keys=False))
    return ExportResult(out_dir, graphs)
