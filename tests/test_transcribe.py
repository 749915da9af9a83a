from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from squeezer.config import EncoderConfig
from squeezer.model import AsrModel
from squeezer.text import CharTokenizer
from squeezer.transcribe import stitched_log_probs, transcribe

ENCODER = EncoderConfig(d_model=32, num_layers=2, num_heads=2, conv_kernel_size=7,
                        time_reduce_idx=None, time_recover_idx=None)  # fmt: skip


def tiny_model() -> AsrModel:
    torch.manual_seed(0)
    model = AsrModel(ENCODER, vocab_size=28).eval()
    model.tokenizer = CharTokenizer()
    return model


def test_short_audio_is_one_plain_forward_pass():
    model = tiny_model()
    waveform = torch.randn(16000 * 3) * 0.1
    stitched = stitched_log_probs(model, waveform, window_s=20.0, overlap_s=2.0)
    plain = model.log_probs(waveform.unsqueeze(0), torch.tensor([waveform.numel()]))
    # The same forward pass, but under no_grad, where some kernels differ: log-probs |y| <= 5
    # move by a few ulps (measured 9.5e-7) within the float32 defaults (1e-5 + 1.3e-6 |y|).
    torch.testing.assert_close(stitched, plain.log_probs[0])


def test_long_audio_windows_tile_every_frame_once():
    model = tiny_model()
    waveform = torch.randn(16000 * 47 + 123) * 0.1
    stitched = stitched_log_probs(model, waveform, window_s=10.0, overlap_s=2.0)
    expected = int(model.frames_for_samples(torch.tensor([waveform.numel()]))[0])
    assert abs(stitched.size(0) - expected) <= 1
    assert stitched.shape[1] == 29  # vocabulary + blank
    # 29 probabilities sum to 1 within a few eps (measured <= 3.6e-7; defaults allow 1.1e-5).
    torch.testing.assert_close(stitched.exp().sum(-1), torch.ones(stitched.size(0)))


def test_transcribe_files_reports_timing(tmp_path):
    model = tiny_model()
    path = tmp_path / "a.wav"
    sf.write(path, (np.random.randn(16000 * 2) * 0.1).astype(np.float32), 16000)
    (result,) = transcribe(model, [path])
    assert result.path == str(path) and result.audio_seconds == 2.0
    assert result.to_dict()["real_time_factor"] > 0
    assert isinstance(result.text, str)
