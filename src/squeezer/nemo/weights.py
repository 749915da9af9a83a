"""NeMo state dicts -> squeezer state dicts: every parameter and buffer mapped, shapes checked.

The layouts are the same up to names and three reshapes: NeMo's pointwise convs are Conv1d
(out, in, 1) where squeezer uses Linear (out, in); its depthwise convs are Conv1d (C, 1, K)
where squeezer's conv module uses a channels-last Conv2d (C, 1, 1, K); and its CTC output has
the blank last where squeezer has it first. Any NeMo key left unmapped, or any squeezer key left
unfilled, is a `NemoImportError`: a partly loaded model is never returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

from squeezer.config import EncoderConfig
from squeezer.nemo.archive import NemoImportError
from squeezer.nn.attention import relative_positional_encoding

__all__ = ["convert_state"]

Transform = Callable[[torch.Tensor], torch.Tensor]

# NeMo tensors that follow from the config (squeezer recomputes them) and are checked instead.
PREPROCESSOR_WINDOW = "preprocessor.featurizer.window"
PREPROCESSOR_FILTERBANK = "preprocessor.featurizer.fb"

_SQUEEZEFORMER_LAYER = {
    "self_attn_scale": "pre_attn", "self_attn": "attn", "norm_self_att": "post_attn",
    "feed_forward1_scale": "pre_ff1", "feed_forward1": "ff1", "norm_feed_forward1": "post_ff1",
    "conv_scale": "pre_conv", "conv": "conv", "norm_conv": "post_conv",
    "feed_forward2_scale": "pre_ff2", "feed_forward2": "ff2", "norm_feed_forward2": "post_ff2",
}  # fmt: skip
_CONFORMER_LAYER = {
    "norm_feed_forward1": "pre_ff1", "feed_forward1": "ff1", "norm_self_att": "pre_attn",
    "self_attn": "attn", "norm_conv": "pre_conv", "conv": "conv",
    "norm_feed_forward2": "pre_ff2", "feed_forward2": "ff2", "norm_out": "post_block",
}  # fmt: skip
_CONV_MODULE = {"pointwise_conv1": "pointwise1", "depthwise_conv": "depthwise",
                "batch_norm": "batch_norm", "pointwise_conv2": "pointwise2"}  # fmt: skip


def _squeeze_last(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.squeeze(-1)  # Conv1d (out, in, 1) -> Linear (out, in)


def _subsampling_names(config: EncoderConfig) -> dict[str, str]:
    """NeMo `pre_encode.conv.<i>` -> squeezer `subsampling.stages.<s>.<j>`."""
    names, index = {"0": "0.0"}, 2  # conv 0, then its ReLU at index 1
    for stage in range(1, config.subsampling_factor.bit_length() - 1):
        if config.subsampling == "depthwise":  # depthwise, pointwise, ReLU
            names[str(index)], names[str(index + 1)] = f"{stage}.0", f"{stage}.1"
            index += 3
        else:  # conv, ReLU
            names[str(index)] = f"{stage}.0"
            index += 2
    return names


def _rename(key: str, config: EncoderConfig, stages: dict[str, str]) -> tuple[str, Transform]:
    """squeezer's name for a NeMo encoder/decoder key, and the reshape its tensor needs."""
    same: Transform = lambda tensor: tensor  # noqa: E731
    if match := re.fullmatch(r"encoder\.layers\.(\d+)\.(\w+)\.(.+)", key):
        index, module, rest = match.groups()
        layer = _SQUEEZEFORMER_LAYER if config.block_layout == "squeezeformer" else _CONFORMER_LAYER
        if module not in layer:
            raise NemoImportError(f"unexpected NeMo weight {key!r}")
        if module == "conv":
            part, _, leaf = rest.partition(".")
            if part not in _CONV_MODULE:
                raise NemoImportError(f"unexpected NeMo weight {key!r}")
            rest = f"{_CONV_MODULE[part]}.{leaf}"
            if part.startswith("pointwise") and leaf == "weight":
                return f"encoder.blocks.{index}.conv.{rest}", _squeeze_last
            if part == "depthwise_conv" and leaf == "weight":
                return f"encoder.blocks.{index}.conv.{rest}", lambda t: t.unsqueeze(2)
        return f"encoder.blocks.{index}.{layer[module]}.{rest}", same
    if match := re.fullmatch(r"encoder\.pre_encode\.conv\.(\d+)\.(weight|bias)", key):
        if match.group(1) not in stages:
            raise NemoImportError(f"unexpected NeMo weight {key!r}")
        return f"encoder.subsampling.stages.{stages[match.group(1)]}.{match.group(2)}", same
    fixed = {
        "encoder.pre_encode.out.": "encoder.subsampling.linear.",
        "encoder.pre_encode.": "encoder.subsampling.linear.",  # a Linear pre-encoder
        "encoder.pre_ln.": "encoder.input_norm.",
        "encoder.time_reduce_layer.dw_conv.": "encoder.time_reduction.depthwise.",
        "encoder.time_recovery_layer.": "encoder.time_recovery.linear.",
    }
    for prefix, target in fixed.items():
        if key.startswith(prefix) and "." not in key[len(prefix) :]:
            return target + key[len(prefix) :], same
    if key.startswith("encoder.time_reduce_layer.pw_conv."):
        leaf = key.rpartition(".")[2]
        return f"encoder.time_reduction.pointwise.{leaf}", _squeeze_last
    raise NemoImportError(f"unexpected NeMo weight {key!r}")


def _check_positional_table(key: str, table: torch.Tensor) -> None:
    """Older NeMo saved its sinusoid table `pos_enc.pe` (1, 2L - 1, D); squeezer computes it."""
    if table.dim() != 3 or table.size(1) % 2 == 0:
        raise NemoImportError(f"unexpected shape {tuple(table.shape)} of NeMo buffer {key!r}")
    length = (table.size(1) + 1) // 2
    ours = relative_positional_encoding(length, table.size(2), table.device, torch.float32)
    difference = (table[0].float() - ours).abs().max().item()
    if difference > 1e-4:
        raise NemoImportError(f"NeMo buffer {key!r} is not the sinusoid table ({difference})")


def _ctc_head(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """NeMo's Conv1d decoder, blank last -> squeezer's Linear head, blank first."""
    weight, bias = (
        state.get("decoder.decoder_layers.0.weight"),
        state.get("decoder.decoder_layers.0.bias"),
    )
    if weight is None or bias is None:
        raise NemoImportError("no CTC decoder weights (decoder.decoder_layers.0.*) in the file")
    weight = weight.squeeze(-1)  # (V + 1, D)
    return {
        "ctc_head.linear.weight": torch.cat([weight[-1:], weight[:-1]]),
        "ctc_head.linear.bias": torch.cat([bias[-1:], bias[:-1]]),
    }


def convert_state(
    state: Mapping[str, torch.Tensor], config: EncoderConfig, expected: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map a NeMo CTC model's state dict onto squeezer's `expected` one (names and shapes).

    Raises NemoImportError naming the first key that is unmapped, left over, missing, or of the
    wrong shape.
    """
    stages = _subsampling_names(config)
    converted = _ctc_head(state)
    sources = {name: "decoder.decoder_layers.0." + name.rpartition(".")[2] for name in converted}
    for key, tensor in state.items():
        if key.startswith(("preprocessor.", "decoder.")):
            continue  # the frontend is checked by the caller; the head is done above
        if key in ("encoder.pos_enc.pe", "encoder.time_reduce_pos_enc.pe"):
            _check_positional_table(key, tensor)
            continue
        name, transform = _rename(key, config, stages)
        if name in converted:
            raise NemoImportError(f"NeMo weights {sources[name]!r} and {key!r} both map to {name}")
        converted[name], sources[name] = transform(tensor), key
    leftover = sorted(sources[name] for name in set(converted) - set(expected))
    if leftover:
        raise NemoImportError(f"NeMo weights with no place in the squeezer model: {leftover[:3]}")
    for name in set(expected) - set(converted):
        if name.endswith(".num_batches_tracked"):  # absent from old checkpoints; unused in eval
            converted[name] = torch.zeros_like(expected[name])
    missing = sorted(set(expected) - set(converted))
    if missing:
        raise NemoImportError(f"squeezer weights the NeMo file does not provide: {missing[:3]}")
    for name, tensor in converted.items():
        if tensor.shape != expected[name].shape:
            raise NemoImportError(
                f"shape mismatch for {name}: the file has {tuple(tensor.shape)}, the config "
                f"implies {tuple(expected[name].shape)}"
            )
        converted[name] = tensor.to(expected[name].dtype).contiguous()
    return converted
