from __future__ import annotations

import pytest
import torch
import yaml

from squeezer.config import EncoderConfig
from squeezer.loading import load_model
from squeezer.model import AsrModel, save_model
from squeezer.text import CharTokenizer

ENCODER = EncoderConfig(d_model=32, num_layers=2, num_heads=2, conv_kernel_size=7,
                        time_reduce_idx=None, time_recover_idx=None)  # fmt: skip


def test_model_directory_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AsrModel(ENCODER, vocab_size=28).eval()
    save_model(model, tmp_path, CharTokenizer())
    loaded = load_model(tmp_path)
    features, lengths = torch.randn(1, 40, 80), torch.tensor([40])
    # The same float32 weights through the same kernels: equal (measured 0); defaults apply.
    torch.testing.assert_close(
        loaded(features, lengths).log_probs, model(features, lengths).log_probs
    )
    assert loaded.tokenizer.vocab_size == 28


def test_weights_that_do_not_fit_the_config_are_one_clear_error(tmp_path):
    save_model(AsrModel(ENCODER, vocab_size=28), tmp_path, CharTokenizer())
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["encoder"]["ff_expansion"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"model\.safetensors: weights do not fit the config"):
        load_model(tmp_path)
