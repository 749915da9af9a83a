"""The subsampling front: features at 10 ms -> model frames at 40 ms (paper Section 3.3.3).

Two kinds, both of stride-2 3x3 Conv2d stages over (time, frequency) with padding 1, ReLU
after each stage (as in the official code and NeMo), then a linear map to d_model:

- "conv2d": every stage is a full Conv2d (Conformer).
- "depthwise": the first stage is a full Conv2d from the single input channel; later stages
  are depthwise 3x3 stride 2 + pointwise 1x1 (Squeezeformer, NeMo's "dw_striding").

"none" is a plain linear projection for inputs that need no subsampling (landmarks, tokens).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from squeezer.config import EncoderConfig
from squeezer.nn.masks import conv_output_lengths, lengths_to_padding_mask
from squeezer.nn.tracing import exporting

__all__ = ["Subsampling"]

KERNEL_SIZE = 3
STRIDE = 2
PADDING = 1


# On CPU the batch is convolved a few utterances at a time, so that the first stage's large
# output (C x T/2 x F/2 floats, 11 MB for 10 s at C = 144) stays in the last-level cache
# through the mask, ReLU and next stage instead of streaming through memory several times:
# 3-5x faster forward and backward on a 2-core machine (docs/benchmarks.md).
CPU_CHUNK_BYTES = 16 * 2**20


def _stage(in_channels: int, out_channels: int, depthwise: bool) -> nn.Sequential:
    """One stride-2 stage, without its ReLU (applied in place after masking)."""
    if not depthwise:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, STRIDE, PADDING))
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, KERNEL_SIZE, STRIDE, PADDING, groups=in_channels),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
    )


# Inside the front, activations are (b, T, F, C): channels-last memory, so that the convs take
# the fast oneDNN path, the pointwise conv is a plain matmul, and masking and ReLU run in place.


def _first_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The single-input-channel 3x3 stride-2 conv as im2col + one matmul.

    x (b, T, F) -> (b, T', F', C). oneDNN has no fast kernel for one input channel; nine taps
    times C outputs is a small, efficient matmul.
    """
    if exporting():  # the same conv as one ONNX Conv node
        return _conv(conv, x.unsqueeze(-1))  # (b, T, F, 1) -> (b, T', F', C)
    b = x.size(0)
    padded = F.pad(x, (PADDING, PADDING, PADDING, PADDING))  # (b, T + 2, F + 2)
    taps = padded.unfold(1, KERNEL_SIZE, STRIDE).unfold(2, KERNEL_SIZE, STRIDE)
    _, T, Fq, _, _ = taps.size()  # (b, T', F', 3 time taps, 3 frequency taps)
    taps = taps.reshape(-1, KERNEL_SIZE * KERNEL_SIZE)  # (b T' F', 9)
    # The bias rides in the matmul as a tenth tap of ones: addmm would first fill the whole
    # (large) output with the bias, an extra pass over it.
    taps = torch.cat([taps, taps.new_ones(taps.size(0), 1)], dim=1)  # (b T' F', 10)
    # Weights as a row-major (10, C) matrix: autograd then takes their gradient as
    # taps^T @ grad, 3x faster than the (grad^T @ taps)^T it picks for a transposed (C, 10).
    weight = torch.cat([conv.weight.flatten(1).t(), conv.bias.unsqueeze(0)], dim=0)  # (10, C)
    return torch.mm(taps, weight).view(b, T, Fq, conv.out_channels)  # (b, T', F', C)


def _conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """(b, T, F, C) -> (b, T', F', C'), the conv computed in channels-last layout."""
    if conv.kernel_size == (1, 1):
        return F.linear(x, conv.weight.flatten(1), conv.bias)  # a matmul over channels
    # A channels-last weight selects oneDNN's channels-last kernels, 3-10x faster on CPU than
    # NCHW here; converting the small weight per call keeps the parameter itself contiguous.
    weight = conv.weight.contiguous(memory_format=torch.channels_last)
    x = x.permute(0, 3, 1, 2)  # (b, C, T, F) view of channels-last memory
    y = F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, groups=conv.groups)
    return y.permute(0, 2, 3, 1)  # (b, T', F', C')


def _zero_padding_(x: torch.Tensor, padding: list[int] | torch.Tensor) -> torch.Tensor:
    """Zero the padded frames of x (b, T, ...) in place.

    `padding` is either each utterance's length, and then only the padded tails are written
    (a broadcast masked_fill reads and writes the whole tensor, 20 MB per 10 s utterance for
    the first stage at C = 256), or a (b, T, 1, 1) bool mask, one kernel on accelerators.
    """
    if isinstance(padding, torch.Tensor):
        return x.masked_fill_(padding, 0.0)
    for index, length in enumerate(padding):
        if length < x.size(1):
            x[index, length:].zero_()
    return x


class _MaskedReLU(torch.autograd.Function):
    """relu(x) with padded frames set to 0, in one new tensor; backward passes the gradient
    where the output is positive.

    The same ops done in place (`masked_fill_(...).relu_()`) on the conv outputs, which are
    views, made autograd copy the whole gradient of the view's base several times per stage
    in backward (CopySlices): most of the front's backward time (issue #18).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, padding: list[int] | torch.Tensor) -> torch.Tensor:
        out = _zero_padding_(x.relu(), padding)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0.0), None


class Subsampling(nn.Module):
    """(B, T, F) features -> (B, T', D) frames, T' = ceil(T / factor) (for factor 4).

    Padded frames are zeroed before every stage so that a sequence's output does not depend
    on how much padding its batch carries.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.kind = config.subsampling
        if self.kind == "none":
            self.num_stages = 0
            self.stages = nn.ModuleList()
            self.linear = nn.Linear(config.input_dim, config.d_model)
            return
        self.num_stages = int(math.log2(config.subsampling_factor))
        channels = config.conv_channels
        depthwise = self.kind == "depthwise"
        self.stages = nn.ModuleList(
            [_stage(1, channels, depthwise=False)]
            + [_stage(channels, channels, depthwise) for _ in range(self.num_stages - 1)]
        )
        freq = config.input_dim
        for _ in range(self.num_stages):
            freq = (freq + 2 * PADDING - KERNEL_SIZE) // STRIDE + 1
        self.linear = nn.Linear(channels * freq, config.d_model)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for `lengths` input frames: one conv length formula per stage."""
        for _ in range(self.num_stages):
            lengths = conv_output_lengths(lengths, KERNEL_SIZE, STRIDE, PADDING)
        return lengths

    def _chunk_size(self, x: torch.Tensor) -> int:
        if x.device.type != "cpu":
            return x.size(0)
        # float32 output of the first stage: C x ceil(T/2) x ceil(F/2) per utterance.
        first_stage_bytes = self.stages[0][0].out_channels * x.size(1) * x.size(2)
        return max(1, CPU_CHUNK_BYTES // first_stage_bytes)

    def _frequency_major_weight(self) -> torch.Tensor:
        """The output linear's (D, C * F') weight with its columns reordered to (F', C).

        NeMo's layer reads channel-major features (C, F'); the stages leave frequency-major
        (F', C) memory. Permuting this small weight once per forward lets the linear read the
        activations as they lie, instead of transposing every utterance's (T', F', C) output
        forward and its gradient backward.
        """
        D = self.linear.out_features
        C = self.stages[-1][-1].out_channels
        Fq = self.linear.in_features // C
        return self.linear.weight.view(D, C, Fq).transpose(1, 2).reshape(D, Fq * C)

    def _convolve(
        self, x: torch.Tensor, lengths: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """x (b, T, F) with zeroed padding -> (b, T', D); `weight` from _frequency_major_weight.

        On CPU the chunk is first cut to its longest utterance, and its output padded back
        with what the cut frames would give (zeros through every stage, so the linear's bias):
        a batch's padding costs no convolution.
        """
        b, T_in, _ = x.size()
        cut = x.device.type == "cpu" and not exporting()
        if cut:
            x = x[:, : int(lengths.max())]  # (b, T_c, F)
        for index, stage in enumerate(self.stages):
            if index == 0:
                x = _first_conv(stage[0], x)  # (b, T/2, F/2, C)
            else:
                for conv in stage:
                    x = _conv(conv, x)  # (b, T/2, F/2, C) of its input
            lengths = conv_output_lengths(lengths, KERNEL_SIZE, STRIDE, PADDING)
            # Zero padded frames before the next stage mixes time; ReLU keeps them zero.
            padding = (
                lengths.tolist()
                if cut
                else lengths_to_padding_mask(lengths, x.size(1))[:, :, None, None]
            )
            if torch.is_grad_enabled() and x.requires_grad:
                x = _MaskedReLU.apply(x, padding)
            else:  # no autograd to confuse: in place, without a new 20 MB tensor per stage
                x = _zero_padding_(x.relu_(), padding)
        _, T, Fq, C = x.size()
        y = F.linear(x.reshape(b, T, Fq * C), weight, self.linear.bias)  # (b, T, D)
        if not cut:
            return y
        T_out = int(self.output_lengths(torch.tensor(T_in)))
        zero_frames = self.linear.bias.to(y.dtype).expand(b, T_out - T, y.size(-1))  # linear(0)
        return torch.cat([y, zero_frames], dim=1)  # (b, T', D)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, F), lengths (B,) -> (y (B, T', D), lengths (B,))."""
        if self.num_stages == 0:
            return self.linear(x), lengths
        x = x.masked_fill(lengths_to_padding_mask(lengths, x.size(1)).unsqueeze(-1), 0.0)
        weight = self._frequency_major_weight()
        if exporting():  # ONNX Runtime plans its own memory: no chunks
            return self._convolve(x, lengths, weight), self.output_lengths(lengths)
        size = self._chunk_size(x)
        chunks = zip(x.split(size), lengths.split(size), strict=True)
        y = torch.cat([self._convolve(xc, lc, weight) for xc, lc in chunks])  # (B, T', D)
        return y, self.output_lengths(lengths)
