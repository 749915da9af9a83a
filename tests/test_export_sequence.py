"""The encoder's options for non-speech sequences export to ONNX and run in ONNX Runtime as in
PyTorch: each positional scheme with an attention bias over the U-Net, drop path, and a model
with PairBias and a GRU position head."""

from __future__ import annotations

import contextlib
import io
import warnings

import pytest
import torch
from torch import nn

from squeezer import EncoderConfig, PairBias, SequenceEncoder
from squeezer.nn import PositionHead
from tests.conftest import shrink

ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-4  # the bound; fp32 reorderings of sums of O(1) terms give ~1e-6
LENGTHS = [[13, 8, 5], [10], [7, 4]]  # batches of other sizes and parities than the example's


class BiasedEncoder(nn.Module):
    """(x (B, T, F), lengths (B,), attn_bias (B, H, T, T)) -> features (B, T, D)."""

    def __init__(self, encoder: SequenceEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x, lengths, attn_bias):
        return self.encoder(x, lengths, attn_bias=attn_bias).features


class PairModel(nn.Module):
    """Ribonanza's shape: pair matrix -> PairBias -> encoder -> GRU head."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.pair_bias = PairBias(1, config.num_heads, hidden=8, kernel_size=5)
        self.encoder = SequenceEncoder(config)
        self.head = PositionHead(config.d_model, 2, gru_hidden=8)

    def forward(self, x, lengths, pair):
        bias = self.pair_bias(pair, lengths)  # (B, H, T, T)
        features, lengths = self.encoder(x, lengths, attn_bias=bias)
        return self.head(features, lengths)


def export(model: nn.Module, heads_or_channels: int, dim: int, path) -> None:
    """torch.onnx.export (dynamo) with dynamic batch and time, the third input (B, C, T, T)."""
    x, lengths = torch.randn(2, 11, dim), torch.tensor([11, 6])
    third = torch.randn(2, heads_or_channels, 11, 11)
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=2)
    shapes = ({0: batch, 1: time}, {0: batch}, {0: batch, 2: time, 3: time})
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval(), (x, lengths, third), dynamo=True,
                                    dynamic_shapes=shapes, opset_version=18)  # fmt: skip
    program.save(str(path))


def assert_runtime_matches(model: nn.Module, path, channels: int, dim: int) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for lengths in LENGTHS:
        B, T = len(lengths), max(lengths)
        x, third = torch.randn(B, T, dim), torch.randn(B, channels, T, T)
        lengths_t = torch.tensor(lengths)
        with torch.no_grad():
            expected = model(x, lengths_t, third)
        feeds = dict(zip(names, (x.numpy(), lengths_t.numpy(), third.numpy()), strict=True))
        (got,) = session.run(None, feeds)
        assert got.shape == tuple(expected.shape)
        assert abs(torch.from_numpy(got) - expected).max() < TOLERANCE, lengths


@pytest.mark.parametrize("position", ["relative", "rope", "alibi", "absolute", "none"])
def test_each_positional_scheme_with_an_attention_bias_exports(position, tmp_path):
    config = shrink(EncoderConfig(), subsampling="none", position=position, drop_path=0.1)
    model = BiasedEncoder(SequenceEncoder(config))
    export(model, config.num_heads, config.input_dim, tmp_path / "model.onnx")
    assert_runtime_matches(model.eval(), tmp_path / "model.onnx", config.num_heads,
                           config.input_dim)  # fmt: skip


def test_pair_bias_and_gru_head_export(tmp_path):
    config = shrink(EncoderConfig(), subsampling="none", position="alibi", input_dim=6)
    model = PairModel(config)
    export(model, 1, 6, tmp_path / "pair.onnx")
    assert_runtime_matches(model.eval(), tmp_path / "pair.onnx", 1, 6)
