"""Measured FLOPs: `torch.utils.flop_counter.FlopCounterMode` on a real eval forward pass.

What the counter counts (torch 2.13): `aten.mm`, `addmm`, `bmm`, `baddbmm` as 2 M K N (an
addmm's bias add is free); `aten.convolution` as 2 x output positions x kernel taps x input
channels per group x output channels (its bias is free, padded taps are counted); the SDPA
kernels `_scaled_dot_product_{flash,efficient,cudnn}_attention` as 2 T^2 d (q k^T) + 2 T^2 d
(weights @ V) per head, whatever `attn_mask` holds: the additive mask (our position scores
and the key-padding mask) is free, and so are the scale and the softmax. Everything else
(elementwise ops, softmax, norms, activations) counts zero.

On CPU our float-masked SDPA call runs `aten._scaled_dot_product_flash_attention_for_cpu`,
which torch 2.13 has no formula for and cannot decompose, so the stock counter gives the
attention's q k^T and weights @ V zero FLOPs. We register torch's own SDPA formula
(`sdpa_flop_count`) for that op, the one CUDA's flash and efficient kernels get, so that the
count is the same on both devices; `sdpa_share` says how much of a total that formula adds.

The counter keys its counts by module fully qualified names ("AsrModel.encoder.blocks.3.attn")
and adds each op to every enclosing module; `_attribute` takes each module's own share (its
count minus its children's) and files it under a component by the module's path.
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from squeezer.analysis.flops import BLOCK_COMPONENTS, FlopsBreakdown, block_frame_rates
from squeezer.config import EncoderConfig
from squeezer.model import AsrModel

__all__ = ["CPU_SDPA", "count_model_flops", "measured_flops", "sdpa_share"]

CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
SDPA_OPS = (
    "aten._scaled_dot_product_flash_attention_for_cpu",
    "aten._scaled_dot_product_flash_attention",
    "aten._scaled_dot_product_efficient_attention",
    "aten._scaled_dot_product_cudnn_attention",
)


def _sdpa_formula(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch's SDPA formula (q k^T and weights @ V), for the CPU kernel it has none for."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


ROOT = "AsrModel"
BLOCK = re.compile(r"^encoder\.blocks\.(\d+)(?:\.(\w+))?")
# Path prefixes (below the root) -> component, first match wins.
_BY_PREFIX = (
    ("encoder.subsampling", "subsampling"),
    ("encoder.time_reduction", "unet"),
    ("encoder.time_recovery", "unet"),
    ("ctc_head", "ctc_head"),
)
_BY_BLOCK_MODULE = {"ff1": "feed_forward", "ff2": "feed_forward", "conv": "convolution"}


def _component(path: str) -> tuple[str, int | None]:
    """The component a module path below the root belongs to, and its block index if any."""
    for prefix, component in _BY_PREFIX:
        if path == prefix or path.startswith(prefix + "."):
            return component, None
    match = BLOCK.match(path)
    if match is None:
        return "other", None
    index, module = int(match.group(1)), match.group(2)
    if module == "attn":
        # The linears are the projections; attn's own ops (bmm, SDPA) are the scores.
        is_linear = path.split(".")[-1].startswith("linear_")
        return ("attention_projections" if is_linear else "attention_scores"), index
    return _BY_BLOCK_MODULE.get(module, "other"), index


def _own_counts(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Each module's FLOPs by op, minus those of the modules nested in it."""
    names = [name for name in counts if name != "Global"]
    own = {name: dict(counts[name]) for name in names}
    for name in names:
        parents = [other for other in names if name.startswith(other + ".")]
        if parents:
            parent = max(parents, key=len)  # the nearest enclosing module the counter saw
            for op, flops in counts[name].items():
                own[parent][op] -= flops
    return own


def _attribute(
    counts: dict[str, dict[str, int]], config: EncoderConfig
) -> tuple[dict[str, int], list[dict[str, int]]]:
    """Counter output -> ("component/op" -> FLOPs, per-block component -> FLOPs)."""
    terms: dict[str, int] = defaultdict(int)
    blocks = [dict.fromkeys(BLOCK_COMPONENTS, 0) for _ in range(config.num_layers)]
    for name, ops in _own_counts(counts).items():
        path = name.removeprefix(ROOT).removeprefix(".")
        component, index = _component(path)
        for op, flops in ops.items():
            if flops == 0:
                continue
            terms[f"{component}/{op}"] += flops
            if index is not None:
                blocks[index][component] = blocks[index].get(component, 0) + flops
    return dict(terms), blocks


def count_model_flops(model: AsrModel, frames: int) -> dict[str, dict[str, int]]:
    """`FlopCounterMode.get_flop_counts()` for one eval forward of a (1, frames, F) input.

    Keys are module names (and "Global"), values map op names ("aten.addmm") to FLOPs. The CPU
    SDPA kernel is counted by torch's SDPA formula (see the module docstring).
    """
    x = torch.randn(1, frames, model.config.input_dim)
    lengths = torch.tensor([frames])
    counter = FlopCounterMode(display=False, depth=None, custom_mapping={CPU_SDPA: _sdpa_formula})
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x, lengths)
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    return {name: {str(op): flops for op, flops in ops.items()} for name, ops in counts.items()}


def measured_flops(
    config: EncoderConfig, frames: int, vocab_size: int = 128, model: AsrModel | None = None
) -> FlopsBreakdown:
    """FLOPs of `AsrModel(config, vocab_size)` on `frames` frames, as `FlopCounterMode` counts.

    Args:
        config: the encoder's configuration.
        frames: input feature frames (10 ms each).
        vocab_size: tokens without the CTC blank.
        model: an already built model of this config, to save building it again.

    Returns:
        A `FlopsBreakdown` with method "measured": terms are "component/aten.op"; the
        `norms_activations` component is zero by construction; anything the module paths do
        not place lands in "other" (a test keeps that empty).
    """
    if frames < 1:
        raise ValueError(f"frames={frames} must be positive")
    if model is None:
        model = AsrModel(config, vocab_size=vocab_size)
    counts = count_model_flops(model, frames)
    terms, blocks = _attribute(counts, config)
    subsampled = int(model.encoder.subsampling.output_lengths(torch.tensor([frames]))[0])
    rates = block_frame_rates(config, subsampled)
    return FlopsBreakdown("measured", frames, terms, tuple(blocks), rates)


def sdpa_share(breakdown: FlopsBreakdown) -> int:
    """FLOPs in a measured breakdown that come from an SDPA kernel's formula."""
    return sum(
        flops for name, flops in breakdown.terms.items() if name.split("/", 1)[1] in SDPA_OPS
    )
