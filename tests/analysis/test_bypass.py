"""Skipping blocks and the half-rate branch: what the bypass analysis changes, and undoes."""

import pytest
import torch

from squeezer.analysis.bypass import bypassed, half_rate_blocks
from squeezer.config import EncoderConfig
from squeezer.model import AsrModel
from tests.conftest import shrink


def _model(**changes) -> AsrModel:
    config = shrink(EncoderConfig.preset("squeezeformer-xs"), **changes)
    return AsrModel(config, vocab_size=10).eval()


def _encode(model: AsrModel) -> torch.Tensor:
    torch.manual_seed(1)
    features, lengths = torch.randn(2, 120, 20), torch.tensor([120, 90])
    with torch.no_grad():
        return model.encoder(features, lengths).features


def test_every_block_and_the_branch_skipped_leaves_the_subsampled_input():
    model = _model()
    span = half_rate_blocks(model)
    config = model.encoder.config
    assert span == tuple(range(config.time_reduce_idx, config.time_recover_idx))
    intact = _encode(model)
    everything = tuple(range(config.num_layers))
    with bypassed(model, everything, branch=True):
        skipped = _encode(model)
    torch.manual_seed(1)
    features, lengths = torch.randn(2, 120, 20), torch.tensor([120, 90])
    with torch.no_grad():
        x, out_lengths = model.encoder.subsampling(features, lengths)
        x = model.encoder.input_norm(x * model.encoder.xscale)
    mask = torch.arange(x.size(1))[None, :] < out_lengths[:, None]
    torch.testing.assert_close(skipped, x * mask[..., None])
    # The hooks are gone afterwards: the model is what it was.
    torch.testing.assert_close(_encode(model), intact, rtol=0, atol=0)


def test_the_branch_alone_is_the_skip_connection():
    model = _model()
    config = model.encoder.config
    before, after = config.time_reduce_idx, config.time_recover_idx
    # With the branch skipped, what the half-rate blocks do cannot matter.
    with bypassed(model, branch=True):
        reference = _encode(model)
    with bypassed(model, half_rate_blocks(model), branch=True):
        torch.testing.assert_close(_encode(model), reference, rtol=0, atol=0)
    with bypassed(model, (before - 1,), branch=True):  # a full-rate block still matters
        assert not torch.equal(_encode(model), reference)
    assert after > before


def test_bad_requests_are_one_line_errors():
    with pytest.raises(ValueError, match="has 4 blocks"), bypassed(_model(), (4,)):
        pass
    conformer = AsrModel(shrink(EncoderConfig.preset("conformer-s")), vocab_size=10)
    assert half_rate_blocks(conformer) == ()
    with pytest.raises(ValueError, match="no half-rate branch"), bypassed(conformer, branch=True):
        pass


def _cut(text: str, seconds: float):
    from types import SimpleNamespace

    supervision = SimpleNamespace(text=text, start=0.0)
    return SimpleNamespace(duration=seconds, supervisions=[supervision])


def test_half_rate_fit_counts_transcripts_the_half_rate_cannot_align(tmp_path):
    from squeezer.analysis.bypass import half_rate_fit
    from squeezer.text.tokenizers import build_tokenizer

    model = _model(input_dim=80)
    model.tokenizer = build_tokenizer("char", ["abcdefghij klm"], tmp_path)
    # 1 s: 26 full-rate frames, 13 at half rate; 0.3 s: 8 and 4.
    fits = _cut("abcdefghijklm", 1.0)  # 13 tokens in 13 frames
    too_long = _cut("abcdefghij klm", 1.0)  # 14 tokens
    repeats = _cut("aabb", 0.3)  # 4 tokens, but CTC needs a blank between repeats: 6 frames
    fit = half_rate_fit(model, [fits, too_long, repeats])
    assert fit.too_long == pytest.approx(2 / 3)
    assert fit.tokens_per_second == pytest.approx((13 + 14 + 4) / 2.3)
    assert fit.half_rate_frames_per_second == pytest.approx((13 + 13 + 4) / 2.3)
    conformer = AsrModel(shrink(EncoderConfig.preset("conformer-s")), vocab_size=10)
    conformer.tokenizer = model.tokenizer
    assert half_rate_fit(conformer, [fits]) is None


def test_attention_entropy_is_one_for_uniform_attention_and_lower_when_sharp():
    from squeezer.analysis.bypass import FeatureBatch, attention_entropy

    model = _model(input_dim=80)
    torch.manual_seed(2)
    batch = FeatureBatch(torch.randn(2, 120, 80), torch.tensor([120, 70]), ["a", "b"])
    entropy = attention_entropy(model, [batch])
    assert len(entropy) == 4 and all(0 < e <= 1 + 1e-6 for e in entropy)
    with torch.no_grad():
        for block in model.encoder.blocks:  # zero scores: every valid key weighs the same
            for linear in (block.attn.linear_q, block.attn.linear_pos):
                linear.weight.zero_()
            block.attn.linear_q.bias.zero_()
            block.attn.pos_bias_u.zero_()
            block.attn.pos_bias_v.zero_()
    assert attention_entropy(model, [batch]) == pytest.approx([1.0] * 4, abs=1e-6)
    with torch.no_grad():  # large content scores: queries pick few keys
        for block in model.encoder.blocks:
            block.attn.linear_q.weight.copy_(500 * block.attn.linear_k.weight)
    assert all(e < 0.5 for e in attention_entropy(model, [batch]))
