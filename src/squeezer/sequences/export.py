"""Export a sequence model for deployment: ONNX (dynamic batch and length) and TFLite (LiteRT).

    squeezer export MODEL --out DIR [--tflite --max-length N]

The export folder is a model directory without weights: config.yaml (with the graphs' names),
the feature statistics and vocabulary, and the graphs. Inputs are the normalised features
(B, T, F) float32, lengths (B,) and, for a model with pair input, pair (B, C, T, T); outputs
are the model's values and output lengths (`SequenceModel.forward`). `squeezer evaluate` and
`predict` run an export folder with `--backend onnx` or `--backend tflite`
(`squeezer.sequences.backends`).

TFLite: litert-torch converts a graph of fixed shapes here (torch.export's guards on the
U-Net's half-rate lengths refuse a dynamic time dimension), so the graph takes one sequence
padded to `max_length` positions, with its real length as an input; the model's masks make
the padding invisible (the backend slices the outputs back to the real length).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import yaml
from torch import nn

from squeezer.files import replaced_atomically
from squeezer.nn.tracing import quiet
from squeezer.sequences.model import CONFIG_FILE, SequenceAssets, SequenceModel, settings

__all__ = ["ONNX_FILE", "TFLITE_FILE", "export_onnx", "export_tflite"]

ONNX_FILE = "model.onnx"
TFLITE_FILE = "model.tflite"
OPSET = 18


class _Graph(nn.Module):
    """The model with plain tuple outputs, lengths as the graph's second output."""

    def __init__(self, model: SequenceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features, lengths, pair=None):
        values, out_lengths = self.model(features, lengths, pair)
        return values, out_lengths


def _example(model: SequenceModel, batch: int, length: int) -> tuple[torch.Tensor, ...]:
    features = torch.randn(batch, length, model.config.input_dim)
    lengths = torch.full((batch,), length, dtype=torch.int64)
    lengths[1:] = max(1, length // 2)  # a padded example too
    if model.pair_channels:
        return features, lengths, torch.randn(batch, model.pair_channels, length, length)
    return features, lengths


def _write_folder(model: SequenceModel, assets: SequenceAssets, out_dir: Path, **graphs) -> None:
    """config.yaml with the graphs named (kept from an earlier export of the other format),
    and the statistics and vocabulary beside them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    assets.save(out_dir)
    path = out_dir / CONFIG_FILE
    values = settings(model, assets)
    if path.is_file():
        old = yaml.safe_load(path.read_text()) or {}
        values.update({k: old[k] for k in ("onnx", "tflite") if k in old and k not in graphs})
    values.update(graphs)
    path.write_text(yaml.safe_dump(values, sort_keys=False))


def _dynamic(graph: Path) -> bool:
    """Whether the time dimension of every input and output stayed symbolic in the graph."""
    import onnx

    time_axes = {"features": 1, "pair": 2, "values": 1}
    model = onnx.load(str(graph), load_external_data=False)
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        axis = time_axes.get(value.name)
        if axis is None or (value.name == "values" and len(dims) < 3):  # classify: (B, C)
            continue
        if not dims[axis].dim_param:
            return False
    return True


def _onnx(model: SequenceModel, example: tuple, graph: Path, dynamic: bool) -> None:
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=2)
    shapes = [{0: batch, 1: time}, {0: batch}, {0: batch, 2: time, 3: time}][: len(example)]
    names = ["features", "lengths", "pair"][: len(example)]
    with quiet():
        program = torch.onnx.export(_Graph(model), example, dynamo=True, input_names=names,
                                    output_names=["values", "out_lengths"],
                                    dynamic_shapes=tuple(shapes) if dynamic else None,
                                    opset_version=OPSET)  # fmt: skip
    with replaced_atomically(graph) as temporary:
        program.save(str(temporary))


@torch.no_grad()
def export_onnx(
    model: SequenceModel, assets: SequenceAssets, out_dir: str | Path, max_length: int = 512
) -> Path:
    """ONNX graph with dynamic batch and length; returns its path.

    Where the exporter fixes the length all the same (measured: a GRU position head with pair
    input), the graph is exported again for one sequence of `max_length` positions, and the
    ONNX backend pads to it as the TFLite one does (config.yaml records the length).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    graph = out_dir / ONNX_FILE
    _onnx(model, _example(model, 2, 23), graph, dynamic=True)  # odd: even lengths specialise more
    if _dynamic(graph):
        _write_folder(model, assets, out_dir, onnx=ONNX_FILE)
        return graph
    logging.getLogger("squeezer").warning(
        "the ONNX exporter fixed the sequence length for this model: exported for one sequence "
        "of up to %d positions (--max-length), padded",
        max_length,
    )
    _onnx(model, _example(model, 1, max_length), graph, dynamic=False)
    _write_folder(model, assets, out_dir, onnx={"file": ONNX_FILE, "max_length": max_length})
    return graph


@torch.no_grad()
def export_tflite(
    model: SequenceModel, assets: SequenceAssets, out_dir: str | Path, max_length: int
) -> Path:
    """TFLite graph for one sequence of up to `max_length` positions; returns its path."""
    try:
        import litert_torch
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "TFLite export needs litert-torch: pip install 'squeezer[tflite]'", name=error.name
        ) from None
    if max_length < 2:
        raise ValueError(f"--max-length={max_length} must be at least 2")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    example = _example(model, 1, max_length)
    with quiet():
        edge = litert_torch.convert(_Graph(model), example)
        with replaced_atomically(out_dir / TFLITE_FILE) as temporary:
            edge.export(str(temporary))
    _write_folder(model, assets, out_dir, tflite={"file": TFLITE_FILE, "max_length": max_length})
    return out_dir / TFLITE_FILE
