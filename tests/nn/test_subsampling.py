"""The channels-last, chunked subsampling front against plain NCHW convolutions, with gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from squeezer import EncoderConfig
from squeezer.nn import subsampling
from squeezer.nn.masks import conv_output_lengths, lengths_to_padding_mask
from squeezer.nn.subsampling import Subsampling


def reference_front(front: Subsampling, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """NeMo's order of ops on (B, C, T, F) tensors: conv, zero padded frames, ReLU per stage,
    then the linear on channel-major (C, F') features."""
    x = x.masked_fill(lengths_to_padding_mask(lengths, x.size(1)).unsqueeze(-1), 0.0)
    x = x.unsqueeze(1)  # (B, 1, T, F)
    for stage in front.stages:
        for conv in stage:
            x = conv(x)
        lengths = conv_output_lengths(lengths, 3, 2, 1)
        padded = lengths_to_padding_mask(lengths, x.size(2))[:, None, :, None]
        x = F.relu(x.masked_fill(padded, 0.0))
    B, C, T, Fq = x.shape
    return front.linear(x.transpose(1, 2).reshape(B, T, C * Fq))


@pytest.mark.parametrize("kind", ["depthwise", "conv2d"])
@pytest.mark.parametrize(
    "frames, chunk_bytes",
    [
        (37, subsampling.CPU_CHUNK_BYTES),  # one chunk, the longest utterance fills it
        (45, subsampling.CPU_CHUNK_BYTES),  # one chunk, cut to 37 frames and padded back
        (45, 1),  # one utterance per chunk, each cut to its own length
    ],
)
def test_front_and_its_gradients_match_plain_convolutions_in_float64(
    kind, frames, chunk_bytes, monkeypatch
):
    monkeypatch.setattr(subsampling, "CPU_CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(0)
    config = EncoderConfig(input_dim=20, d_model=16, subsampling=kind, subsampling_channels=8)
    front = Subsampling(config).double()
    x = torch.randn(3, frames, 20, dtype=torch.float64)
    lengths = torch.tensor([37, 30, 11])
    grad = torch.randn(3, (frames + 3) // 4, 16, dtype=torch.float64)
    results = []
    for run in (lambda: front(x, lengths)[0], lambda: reference_front(front, x, lengths)):
        front.zero_grad()
        out = run()
        out.backward(grad)
        results.append([out.detach()] + [p.grad.clone() for p in front.parameters()])
    with torch.no_grad():  # the in-place inference path
        results[0].append(front(x, lengths)[0])
    results[1].append(results[1][0])
    # float64 sums of at most a few hundred terms of size ~1: agree to ~1e-14.
    for ours, reference in zip(*results, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)


def test_a_cut_chunk_keeps_the_autocast_dtype():
    # Under bf16 autocast the linear's output is bf16; the frames padded back after a cut
    # must be too (the fp32 bias would promote the whole output to fp32).
    config = EncoderConfig(
        input_dim=20, d_model=16, subsampling="depthwise", subsampling_channels=8
    )
    front = Subsampling(config)
    x, lengths = torch.randn(2, 45, 20), torch.tensor([37, 30])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = front(x, lengths)
    assert y.dtype == torch.bfloat16
    assert y.shape == (2, 12, 16)
    torch.testing.assert_close(y[0, 10:], front.linear.bias.to(torch.bfloat16).expand(2, 16))
