"""The sequence model and its directory: shapes per task, padding invariance, a round trip,
and one-line errors for directories that are not what `save_sequence_model` wrote."""

from __future__ import annotations

import pytest
import torch
import yaml

from squeezer.config import EncoderConfig
from squeezer.sequences.dataset import Characters, LabelMap
from squeezer.sequences.model import (
    SequenceAssets,
    SequenceModel,
    load_sequence_model,
    save_sequence_model,
)
from squeezer.sequences.normalize import FeatureStats
from squeezer.sequences.recipe import HeadConfig

CONFIG = EncoderConfig(input_dim=6, d_model=32, num_layers=4, num_heads=2, conv_kernel_size=5,
                       time_reduce_idx=1, time_recover_idx=3, subsampling="none",
                       dropout=0.0, attention_dropout=0.0)  # fmt: skip


def _model(task: str, pair_channels: int = 0) -> SequenceModel:
    torch.manual_seed(0)
    config = CONFIG if task != "ctc" else CONFIG.replace(subsampling="depthwise",
                                                         subsampling_factor=2)  # fmt: skip
    head = HeadConfig(gru_hidden=8 if task == "regress" else None, pair_hidden=4, pair_kernel=3)
    model = SequenceModel(task, config, 3, head, pair_channels).eval()
    if task == "value":  # a scale of its own, so that a round trip that lost it would show
        model.target_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        model.target_std.copy_(torch.tensor([3.0, 0.1, 1.0]))
    return model


def _assets(task: str) -> SequenceAssets:
    stats = FeatureStats(tuple(range(6)), (1.0,) * 6, 10)
    if task == "classify":
        return SequenceAssets(stats, labels=LabelMap(["x", "y", "z"]))
    if task == "ctc":
        return SequenceAssets(stats, tokenizer=Characters(["a", "b", "c"]))
    return SequenceAssets(stats)


@pytest.mark.parametrize(
    ("task", "pair_channels"),
    [("classify", 0), ("classify", 2), ("regress", 0), ("regress", 2), ("ctc", 0)],
)
def test_outputs_do_not_depend_on_padding(task, pair_channels):
    """A sequence's outputs alone equal its outputs in a padded batch beside a longer one."""
    model = _model(task, pair_channels)
    x, lengths = torch.randn(2, 23, 6), torch.tensor([23, 14])
    pair = torch.randn(2, pair_channels, 23, 23) if pair_channels else None
    values, out_lengths = model(x, lengths, pair)
    alone_pair = pair[1:, :, :14, :14] if pair_channels else None
    alone, alone_lengths = model(x[1:, :14], lengths[1:], alone_pair)
    assert int(out_lengths[1]) == int(alone_lengths[0])
    n = int(alone_lengths[0])
    expected = {"classify": (2, 3), "regress": (2, 23, 3), "ctc": (2, 12, 4), "value": (2, 3)}[task]
    assert tuple(values.shape) == expected
    pooled = task in ("classify", "value")
    got = values[1] if pooled else values[1, :n]
    want = alone[0] if pooled else alone[0, :n]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("task", ["classify", "regress", "ctc", "value"])
def test_a_saved_model_loads_with_the_same_outputs(task, tmp_path):
    model = _model(task, 1 if task != "ctc" else 0)
    save_sequence_model(model, _assets(task), tmp_path / "m")
    loaded, assets = load_sequence_model(tmp_path / "m")
    x, lengths = torch.randn(1, 9, 6), torch.tensor([9])
    pair = torch.randn(1, 1, 9, 9) if model.pair_channels else None
    torch.testing.assert_close(loaded(x, lengths, pair).values, model(x, lengths, pair).values,
                               rtol=0, atol=0)  # fmt: skip
    assert assets.stats == _assets(task).stats


def test_the_pair_input_must_match_the_model():
    with pytest.raises(ValueError, match="subsampling=none"):
        SequenceModel("classify", CONFIG.replace(subsampling="depthwise"), 3, pair_channels=1)
    with pytest.raises(ValueError, match="pair matrices of 1 channel"):
        _model("regress", 1)(torch.randn(1, 5, 6), torch.tensor([5]))
    with pytest.raises(ValueError, match="takes none"):
        _model("regress")(torch.randn(1, 5, 6), torch.tensor([5]), torch.randn(1, 1, 5, 5))


def _edit_config(directory, **changes):
    path = directory / "config.yaml"
    values = yaml.safe_load(path.read_text())
    values.update(changes)
    path.write_text(yaml.safe_dump(values))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: _edit_config(d, format="squeezer-ctc-v1"), "not a squeezer-sequence-v1"),
        (lambda d: _edit_config(d, colour="red"), "unknown key(s) 'colour'"),
        (lambda d: _edit_config(d, outputs=4), "tensor head.weight has shape"),
        (lambda d: _edit_config(d, task="sing"), "task: 'sing'"),
        (lambda d: (d / "labels.json").write_text('{"classes": ["x"]}'), "1 class names"),
        (lambda d: (d / "labels.json").unlink(), "no class names"),
        (lambda d: (d / "feature_stats.json").write_text("{}"), "not feature statistics"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 10), "not a safetensors"),
    ],
)
def test_a_damaged_directory_is_one_line_naming_the_file(damage, message, tmp_path):
    directory = save_sequence_model(_model("classify"), _assets("classify"), tmp_path / "m")
    damage(directory)
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        load_sequence_model(directory)
    assert message in str(error.value) and str(directory) in str(error.value)
    assert "\n" not in str(error.value)
