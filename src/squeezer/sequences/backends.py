"""The runtimes a sequence model runs in, behind one call:
(features (B, T, F), lengths (B,), pair (B, C, T, T) or None) -> (values, lengths).

    torch   a model directory (`load_sequence_model`)
    onnx    an export folder's model.onnx in ONNX Runtime
    tflite  an export folder's model.tflite in the LiteRT interpreter, one sequence at a time,
            padded to the length it was converted for

`load_backend(path, kind)` returns the callable with the model's task, assets and feature count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from squeezer.sequences.model import SequenceAssets, describe_folder, load_sequence_model

__all__ = ["BACKENDS", "LoadedBackend", "load_backend"]

BACKENDS = ("torch", "onnx", "tflite")


@dataclass
class LoadedBackend:
    """A runnable model: `run(features, lengths, pair)`, and what scoring needs to know."""

    run: Any
    task: str
    assets: SequenceAssets
    input_dim: int
    pair_channels: int


def load_backend(path: str | Path, kind: str = "torch", threads: int = 0) -> LoadedBackend:
    """The model at `path` (a model directory for torch, an export folder otherwise)."""
    path = Path(path)
    if kind not in BACKENDS:
        raise ValueError(f"--backend {kind!r} is not one of {', '.join(BACKENDS)}")
    if kind == "torch":
        model, assets = load_sequence_model(path)
        return LoadedBackend(_torch_runner(model), model.task, assets, model.config.input_dim,
                             model.pair_channels)  # fmt: skip
    values, meta, assets = describe_folder(path)
    if kind not in values:
        raise ValueError(f"{path}: no {kind} graph here (squeezer export MODEL --out {path}"
                         f"{' --tflite' if kind == 'tflite' else ''})")  # fmt: skip
    graph = values[kind]
    if kind == "onnx" and isinstance(graph, str):  # dynamic batch and length
        run = _OnnxRunner(path / graph, meta.pair_channels > 0, threads)
    elif kind == "onnx":  # one sequence of a fixed length (see `export_onnx`)
        onnx = _OnnxRunner(path / graph["file"], meta.pair_channels > 0, threads)
        run = _Padded(_numpy_call(onnx), int(graph["max_length"]), "ONNX")
    else:
        run = _Padded(_tflite_call(path / graph["file"], threads), int(graph["max_length"]),
                      "TFLite")  # fmt: skip
    return LoadedBackend(run, meta.task, assets, meta.config.input_dim, meta.pair_channels)


def _torch_runner(model):
    def run(features, lengths, pair):
        return model(features, lengths, pair)

    return run


class _OnnxRunner:
    def __init__(self, graph: Path, has_pair: bool, threads: int) -> None:
        import onnxruntime as ort

        if not graph.is_file():
            raise FileNotFoundError(f"{graph}: no such file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.has_pair = has_pair

    def __call__(self, features, lengths, pair):
        inputs = {"features": features.numpy(), "lengths": lengths.numpy()}
        if self.has_pair:
            inputs["pair"] = pair.numpy()
        values, out_lengths = self.session.run(None, inputs)
        return torch.from_numpy(values), torch.from_numpy(out_lengths)


def _numpy_call(runner: _OnnxRunner):
    def call(feed: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        values, lengths = runner(*(torch.from_numpy(x) for x in feed), *([None] * (3 - len(feed))))
        return values.numpy(), lengths.numpy()

    return call


def _tflite_call(graph: Path, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "the LiteRT backend needs ai-edge-litert: pip install 'squeezer[tflite]'",
            name=error.name,
        ) from None
    if not graph.is_file():
        raise FileNotFoundError(f"{graph}: no such file")
    runner = Interpreter(model_path=str(graph), num_threads=threads or None).get_signature_runner()
    names = sorted(runner.get_input_details())  # args_0, args_1[, args_2]: the graph's order

    def call(feed: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feed = [x.astype(np.int32) if x.dtype == np.int64 else x for x in feed]
        result = runner(**dict(zip(names, feed, strict=True)))
        values, lengths = (result[k] for k in sorted(result))
        return np.asarray(values), np.asarray(lengths)

    return call


class _Padded:
    """A graph for one sequence of `max_length` positions: each sequence zero-padded to it
    (the model's masks make the padding invisible), the outputs cut back."""

    def __init__(self, call, max_length: int, name: str) -> None:
        self.call, self.max_length, self.name = call, max_length, name

    def __call__(self, features, lengths, pair):
        values, out_lengths = [], []
        for row in range(features.size(0)):
            length = int(lengths[row])
            if length > self.max_length:
                raise ValueError(
                    f"a sequence of {length} positions is longer than the {self.name} graph's "
                    f"{self.max_length} (export again with a larger --max-length)"
                )
            x = np.zeros((1, self.max_length, features.size(2)), np.float32)
            x[0, :length] = features[row, :length].numpy()
            feed = [x, np.array([length], np.int64)]
            if pair is not None:
                p = np.zeros((1, pair.size(1), self.max_length, self.max_length), np.float32)
                p[0, :, :length, :length] = pair[row, :, :length, :length].numpy()
                feed.append(p)
            value, out_length = self.call(feed)
            values.append(torch.from_numpy(np.array(value[0])))
            out_lengths.append(int(out_length[0]))
        return _stack(values, out_lengths), torch.tensor(out_lengths)


def _stack(values: list[torch.Tensor], out_lengths: list[int]) -> torch.Tensor:
    """Per-sequence outputs, cut to their real positions and padded to the batch's longest."""
    if values[0].dim() == 1:  # classify: (C,) each
        return torch.stack(values)
    longest = max(out_lengths)
    out = torch.zeros(len(values), longest, values[0].size(-1))
    for row, (value, length) in enumerate(zip(values, out_lengths, strict=True)):
        out[row, :length] = value[:length]
    return out
