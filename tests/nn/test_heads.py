from __future__ import annotations

import torch

from squeezer import AsrModel, EncoderConfig, FrameRegressor, PooledClassifier
from squeezer.nn.heads import masked_mean
from tests.conftest import shrink


def test_ctc_model_outputs_log_probs_with_blank_first():
    config = shrink(EncoderConfig())
    model = AsrModel(config, vocab_size=10).eval()
    features = torch.randn(2, 50, config.input_dim)
    lengths = torch.tensor([50, 31])
    out = model(features, lengths)
    assert out.log_probs.shape == (2, 13, 11)
    assert out.log_probs.dtype == torch.float32
    # float32 defaults (1e-5 + 1.3e-6): 11 probabilities summing to 1, off by a few eps
    # (measured <= 3e-7).
    torch.testing.assert_close(out.log_probs.exp().sum(-1), torch.ones(2, 13))
    assert torch.equal(out.lengths, model.output_lengths(lengths))
    # The log-probs feed torch's CTC loss (blank=0) directly.
    targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
    loss = torch.nn.functional.ctc_loss(
        out.log_probs.transpose(0, 1), targets, out.lengths, torch.tensor([3, 2]), blank=0
    )
    assert torch.isfinite(loss)


def test_masked_mean_ignores_padding():
    features = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    assert masked_mean(features, torch.tensor([2, 3])).flatten().tolist() == [2.0, 4.0]


def test_pooled_classifier_is_padding_invariant():
    config = shrink(EncoderConfig(), subsampling="none", input_dim=6)
    model = PooledClassifier(config, num_classes=5).eval()
    x = torch.randn(2, 30, 6)
    lengths = torch.tensor([30, 17])
    with torch.no_grad():
        batch = model(x, lengths)
        alone = model(x[1:, :17], lengths[1:])
    assert batch.shape == (2, 5)
    # float32 reordering only, on logits |y| < 1: a few 1e-7 (measured <= 1.8e-7).
    assert (batch[1] - alone[0]).abs().max() < 1e-4


def test_frame_regressor_zeroes_padding():
    config = shrink(EncoderConfig(), subsampling="none", input_dim=6)
    model = FrameRegressor(config, num_outputs=3).eval()
    predictions, lengths = model(torch.randn(2, 30, 6), torch.tensor([30, 17]))
    assert predictions.shape == (2, 30, 3)
    assert torch.all(predictions[1, 17:] == 0)
    assert lengths.tolist() == [30, 17]
