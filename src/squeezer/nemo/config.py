"""NeMo model configs -> squeezer's `EncoderConfig` and `FeatureConfig`, key by key.

Every key of the encoder and preprocessor sections is either mapped, accepted because it only
matters in training or for memory (listed, with the reason, in `_IGNORED`), or required to hold
the one value squeezer computes the same way; anything else is a `NemoImportError` naming the
key and its value. Older configs spell a module as `{cls: ..., params: {...}}` instead of
`{_target_: ..., ...}`; both are read. `${model.x.y}` interpolations are resolved.
"""

from __future__ import annotations

import math
import re
from typing import Any

from squeezer.audio import SAMPLE_RATE
from squeezer.config import EncoderConfig
from squeezer.features import FeatureConfig
from squeezer.nemo.archive import NemoImportError

__all__ = ["CONFORMER", "SQUEEZEFORMER", "encoder_config", "feature_config", "module_section"]

SQUEEZEFORMER = "SqueezeformerEncoder"
CONFORMER = "ConformerEncoder"
PREPROCESSOR = "AudioToMelSpectrogramPreprocessor"
_INTERPOLATION = re.compile(r"^\$\{(?:model\.)?([\w.]+)\}$")

# Keys that change training only (dropout, stochastic depth, augmentation) or memory use, not
# the function an eval-mode model computes.
_IGNORED = {
    "dropout_emb", "dropout_pre_encoder", "pos_emb_max_len", "stochastic_depth_drop_prob",
    "stochastic_depth_mode", "stochastic_depth_start_layer", "subsampling_conv_chunking_factor",
    "use_pytorch_sdpa", "use_pytorch_sdpa_backends", "sync_max_audio_length",
    "att_context_probs", "att_context_style", "global_tokens", "global_tokens_spacing",
    "global_attn_separate",
    "rng", "nb_augmentation_prob", "nb_max_freq", "use_grads", "max_duration",
    "use_torchaudio", "stft_conv", "stft_exact_pad",  # deprecated, forced off by NeMo 2.x
}  # fmt: skip
# Keys that must hold a value squeezer computes the same way (None = also accepted).
_REQUIRED = {
    "feat_out": (-1, None),
    "self_attention_model": ("rel_pos",),
    "conv_norm_type": ("batch_norm",),
    "causal_downsampling": (False,),
    "use_bias": (True,),
    "reduction": (None,),
    "reduction_position": (None,),
    "reduction_factor": (1,),
    "frame_splicing": (1,),
}


def _resolve(value: Any, root: dict[str, Any], where: str) -> Any:
    if not isinstance(value, str) or not (match := _INTERPOLATION.match(value)):
        return value
    node: Any = root
    for part in match.group(1).split("."):
        if not isinstance(node, dict) or part not in node:
            raise NemoImportError(f"{where}={value!r}: cannot resolve the interpolation")
        node = node[part]
    return _resolve(node, root, where)


def module_section(root: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(class name, keys) of the module section `name`, interpolations resolved."""
    section = root.get(name)
    if not isinstance(section, dict):
        raise NemoImportError(f"model config has no {name!r} section")
    target = section.get("_target_", section.get("cls"))
    keys = section.get("params", section) if "cls" in section else section
    keys = {k: _resolve(v, root, f"{name}.{k}") for k, v in keys.items()}
    keys = {k: v for k, v in keys.items() if k not in ("_target_", "cls", "params")}
    return str(target).rpartition(".")[2], keys


def _take(keys: dict[str, Any], section: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """NeMo's value (or its default) of each mapped key; errors for unknown or unsupported."""
    for key, value in keys.items():
        if key in _REQUIRED and value not in _REQUIRED[key]:
            raise NemoImportError(f"unsupported {section}.{key}={value!r}")
        if key not in defaults and key not in _REQUIRED and key not in _IGNORED:
            raise NemoImportError(f"unsupported {section} key {key!r} (value {value!r})")
    return {key: keys.get(key, default) for key, default in defaults.items()}


_ENCODER_DEFAULTS = dict(
    feat_in=None, n_layers=None, d_model=None, subsampling=None, subsampling_factor=4,
    subsampling_conv_channels=-1, ff_expansion_factor=4, n_heads=4, att_context_size=None,
    xscaling=True, untie_biases=True, conv_kernel_size=31, conv_context_size=None,
    dropout=0.1, dropout_att=0.0,
)  # fmt: skip
_SQUEEZEFORMER_DEFAULTS = dict(adaptive_scale=True, time_reduce_idx=None, time_recovery_idx=None)
_SUBSAMPLING = {"dw_striding": "depthwise", "striding": "conv2d"}


def _subsampling(values: dict[str, Any]) -> dict[str, Any]:
    kind, factor = values["subsampling"], values["subsampling_factor"]
    if not kind or factor <= 1:  # NeMo's plain Linear pre-encoder
        return dict(subsampling="none", subsampling_factor=1)
    if kind not in _SUBSAMPLING:
        raise NemoImportError(f"unsupported encoder.subsampling={kind!r}")
    channels = values["subsampling_conv_channels"]
    return dict(
        subsampling=_SUBSAMPLING[kind],
        subsampling_factor=factor,
        subsampling_channels=None if channels in (-1, None) else channels,
    )


def _check_context(values: dict[str, Any]) -> None:
    context = values["att_context_size"]
    if context is not None and list(context) not in ([-1, -1], []):
        raise NemoImportError(f"unsupported encoder.att_context_size={context!r} (streaming)")
    conv_context, kernel = values["conv_context_size"], values["conv_kernel_size"]
    if conv_context is not None and list(conv_context) != [(kernel - 1) // 2] * 2:
        raise NemoImportError(f"unsupported encoder.conv_context_size={conv_context!r} (causal)")


def encoder_config(root: dict[str, Any]) -> tuple[EncoderConfig, str]:
    """The `EncoderConfig` of a NeMo model config, and the NeMo encoder class name."""
    target, keys = module_section(root, "encoder")
    if target == SQUEEZEFORMER:
        defaults = {**_ENCODER_DEFAULTS, **_SQUEEZEFORMER_DEFAULTS, "subsampling": "dw_striding"}
    elif target == CONFORMER:
        defaults = {**_ENCODER_DEFAULTS, "subsampling": "striding"}
    else:
        raise NemoImportError(
            f"unsupported encoder._target_ {target!r}: squeezer reads {SQUEEZEFORMER} and "
            f"{CONFORMER}"
        )
    values = _take(keys, "encoder", defaults)
    _check_context(values)
    common = dict(
        input_dim=values["feat_in"], d_model=values["d_model"], num_layers=values["n_layers"],
        num_heads=values["n_heads"], ff_expansion=values["ff_expansion_factor"],
        conv_kernel_size=values["conv_kernel_size"], dropout=values["dropout"],
        attention_dropout=values["dropout_att"], xscaling=bool(values["xscaling"]),
        **_subsampling(values),
    )  # fmt: skip
    if target == CONFORMER:
        layout = dict(time_reduce_idx=None, time_recover_idx=None, block_layout="conformer",
                      conv_activation="glu", norm_scheme="pre_post")  # fmt: skip
    else:
        reduce, recover = values["time_reduce_idx"], values["time_recovery_idx"]
        if reduce is not None and recover is None:
            recover = values["n_layers"] - 1  # NeMo recovers before the last block by default
        # adaptive_scale=False keeps NeMo's scale/bias as fixed ones and zeros (buffers), which
        # squeezer's ScaleBias reproduces exactly with those values.
        layout = dict(time_reduce_idx=reduce, time_recover_idx=recover,
                      block_layout="squeezeformer", conv_activation="swish",
                      norm_scheme="post_scale_bias")  # fmt: skip
    try:
        return EncoderConfig(**common, **layout), target
    except (TypeError, ValueError) as error:
        raise NemoImportError(f"encoder config: {error}") from None


_FEATURE_DEFAULTS = dict(
    sample_rate=16000, window_size=0.02, window_stride=0.01, n_window_size=None,
    n_window_stride=None, window="hann", normalize="per_feature", n_fft=None, preemph=0.97,
    features=64, lowfreq=0, highfreq=None, log=True, log_zero_guard_type="add",
    log_zero_guard_value=2**-24, pad_to=16, exact_pad=False, pad_value=0, mag_power=2.0,
    mel_norm="slaney", dither=1e-5,
)  # fmt: skip


def _samples(values: dict[str, Any], seconds_key: str, samples_key: str) -> int:
    if values[samples_key] is not None:
        return int(values[samples_key])
    return int(values[seconds_key] * values["sample_rate"])  # NeMo truncates, so do we


def _normalize(value: Any) -> str:
    if isinstance(value, dict):
        raise NemoImportError("unsupported preprocessor.normalize with fixed_mean/fixed_std")
    if not value or value == "none":
        return "none"
    if value not in ("per_feature", "all_features"):
        raise NemoImportError(f"unsupported preprocessor.normalize={value!r}")
    return value


def feature_config(root: dict[str, Any]) -> FeatureConfig:
    """The `FeatureConfig` (NeMo-exact mode) of a NeMo model's preprocessor section."""
    target, keys = module_section(root, "preprocessor")
    if target != PREPROCESSOR:
        raise NemoImportError(f"unsupported preprocessor._target_ {target!r}")
    values = _take(keys, "preprocessor", _FEATURE_DEFAULTS)
    if values["sample_rate"] != SAMPLE_RATE:
        raise NemoImportError(f"unsupported preprocessor.sample_rate={values['sample_rate']!r}")
    if values["pad_to"] == "max":
        raise NemoImportError("unsupported preprocessor.pad_to='max'")
    win_length = _samples(values, "window_size", "n_window_size")
    window = values["window"]
    try:
        return FeatureConfig(
            sample_rate=values["sample_rate"], n_mels=values["features"], win_length=win_length,
            hop_length=_samples(values, "window_stride", "n_window_stride"),
            n_fft=values["n_fft"] or 2 ** math.ceil(math.log2(win_length)),
            window=window, preemphasis=values["preemph"], dither=float(values["dither"] or 0),
            exact_pad=bool(values["exact_pad"]), mag_power=float(values["mag_power"]),
            f_min=float(values["lowfreq"] or 0), f_max=values["highfreq"] or None,
            mel_norm="none" if values["mel_norm"] is None else values["mel_norm"],
            log=bool(values["log"]), log_guard_type=values["log_zero_guard_type"],
            log_guard_value=values["log_zero_guard_value"],
            normalize=_normalize(values["normalize"]), count_final_frame=False,
            pad_to=int(values["pad_to"] or 0), pad_value=float(values["pad_value"]),
            nemo_compat=True,
        )  # fmt: skip
    except (TypeError, ValueError) as error:
        raise NemoImportError(f"preprocessor config: {error}") from None
