from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from squeezer import EncoderConfig, ablation_ladder, list_presets


def test_presets_cover_the_paper_zoo():
    assert list_presets() == [
        "squeezeformer-xs",
        "squeezeformer-s",
        "squeezeformer-sm",
        "squeezeformer-m",
        "squeezeformer-ml",
        "squeezeformer-l",
        "conformer-s",
        "conformer-m",
        "conformer-l",
    ]


@pytest.mark.parametrize(
    "name, d_model, layers, heads, reduce, recover",
    [
        ("squeezeformer-xs", 144, 16, 4, 7, 15),
        ("squeezeformer-s", 196, 18, 4, 8, 17),
        ("squeezeformer-sm", 256, 16, 4, 7, 15),
        ("squeezeformer-m", 324, 20, 4, 9, 19),
        ("squeezeformer-ml", 512, 18, 8, 8, 17),
        ("squeezeformer-l", 640, 22, 8, 10, 21),
        ("conformer-s", 144, 16, 4, None, None),
        ("conformer-m", 256, 16, 4, None, None),
        ("conformer-l", 512, 18, 8, None, None),
    ],
)
def test_preset_dimensions_match_official_configs(name, d_model, layers, heads, reduce, recover):
    config = EncoderConfig.preset(name)
    assert (config.d_model, config.num_layers, config.num_heads) == (d_model, layers, heads)
    assert (config.time_reduce_idx, config.time_recover_idx) == (reduce, recover)
    assert config.conv_kernel_size == 31 and config.ff_expansion == 4 and config.input_dim == 80
    squeeze = name.startswith("squeezeformer")
    assert config.block_layout == ("squeezeformer" if squeeze else "conformer")
    assert config.conv_activation == ("swish" if squeeze else "glu")
    assert config.norm_scheme == ("post_scale_bias" if squeeze else "pre_post")
    assert config.subsampling == ("depthwise" if squeeze else "conv2d")


@pytest.mark.parametrize("name", list_presets())
def test_yaml_round_trip(tmp_path, name):
    config = EncoderConfig.preset(name)
    path = tmp_path / f"{name}.yaml"
    config.to_yaml(path)
    assert EncoderConfig.from_yaml(path) == config


def test_unknown_preset_and_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match="squeezeformer-xxl"):
        EncoderConfig.preset("squeezeformer-xxl")
    with pytest.raises(ValueError, match="d_modle"):
        EncoderConfig.from_dict({"d_modle": 3})
    path = tmp_path / "bad.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        EncoderConfig.from_yaml(path)


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(block_layout="macaron"), "block_layout"),
        (dict(conv_activation="relu"), "conv_activation"),
        (dict(norm_scheme="rms"), "norm_scheme"),
        (dict(subsampling="vgg"), "subsampling"),
        (dict(d_model=100, num_heads=3), "d_model"),
        (dict(conv_kernel_size=30), "conv_kernel_size"),
        (dict(dropout=1.5), "dropout"),
        (dict(time_reduce_idx=16), "time_reduce_idx"),
        (dict(time_reduce_idx=7, time_recover_idx=5), "time_recover_idx"),
        (dict(time_reduce_idx=None, time_recover_idx=15), "time_recover_idx"),
        (dict(block_layout="conformer", norm_scheme="post_scale_bias"), "norm_scheme"),
        (dict(subsampling_factor=3), "subsampling_factor"),
        (dict(num_layers=0), "num_layers"),
    ],
)
def test_invalid_values_raise_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        EncoderConfig().replace(**changes)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EncoderConfig().d_model = 3  # type: ignore[misc]


def test_ablation_ladder_changes_one_switch_per_rung_in_paper_order():
    rungs = ablation_ladder()
    assert rungs[0].config == EncoderConfig.preset("conformer-m")
    assert rungs[-1].config == EncoderConfig.preset("squeezeformer-sm")
    changed = []
    for before, after in itertools.pairwise(rungs):
        diff = {
            f.name
            for f in dataclasses.fields(EncoderConfig)
            if getattr(before.config, f.name) != getattr(after.config, f.name)
        }
        changed.append(diff)
    assert changed == [
        {"time_reduce_idx", "time_recover_idx"},
        {"block_layout"},
        {"conv_activation"},
        {"norm_scheme"},
        {"subsampling"},
    ]
    assert [r.name for r in rungs] == [
        "conformer-m",
        "temporal-unet",
        "squeezeformer-block",
        "unified-activation",
        "simplified-layernorm",
        "depthwise-subsampling",
    ]


@pytest.mark.parametrize("name", list_presets())
def test_shipped_yaml_presets_equal_the_builtin_ones(name):
    path = Path(__file__).parents[1] / "configs" / "encoders" / f"{name}.yaml"
    assert EncoderConfig.from_yaml(path) == EncoderConfig.preset(name)
