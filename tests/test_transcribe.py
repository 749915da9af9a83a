from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

import squeezer.transcribe as transcribe_module
from squeezer.audio import SAMPLE_RATE, AudioStream
from squeezer.config import EncoderConfig
from squeezer.decoding import greedy_decode
from squeezer.model import AsrModel
from squeezer.text import CharTokenizer
from squeezer.timestamps import ctc_timings, snap_to_speech, speech_segments
from squeezer.transcribe import (
    _kept_frames,
    _stream_log_probs,
    _Tally,
    frame_samples,
    stitched_log_probs,
    transcribe,
)
from tests.test_audio import without_length

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


# --- Long files as a stream -------------------------------------------------------------------
# Windows of 4 s overlapping by 1 s: with the tiny model's 640-sample (40 ms) frames, windows of
# 100 frames = 64,000 samples, margins of 12 frames, a hop of 76 frames = 48,640 samples.
WINDOW_S, OVERLAP_S = 4.0, 1.0
WINDOW, HOP = 64_000, 48_640
BLOCK = 4_999  # decoded frames per block: aligned with nothing, so windows straddle blocks


def talkative_model() -> AsrModel:
    """The tiny model with its CTC head scaled up, so that the greedy path changes token every
    few frames (log-probs reach about -50), and the space's bias raised, so that it wins now
    and then: there is text, and there are words (16 in 30 s) with times to compare."""
    model = tiny_model()
    with torch.no_grad():
        model.ctc_head.linear.weight.mul_(20)
        model.ctc_head.linear.bias[1] += 15  # CharTokenizer: id 1 is the space
    return model


def bursts(frames: int, rate: int, channels: int = 1) -> np.ndarray:
    """Deterministic (frames, channels) float32: 1.4 s of tone and noise every 2 s, then quiet,
    so the speech/pause finder behind word times has pauses to find."""
    rng = np.random.default_rng(frames)
    t = np.arange(frames) / rate
    columns = []
    for channel in range(channels):
        tone = 0.2 * np.sin(2 * np.pi * (150 + 70 * channel) * t)
        columns.append(np.where(t % 2.0 < 1.4, tone + 0.05 * rng.standard_normal(frames),
                                0.002 * rng.standard_normal(frames)))  # fmt: skip
    return np.stack(columns, axis=1).astype(np.float32)


def whole_file(path) -> np.ndarray:
    """The file read the way transcription read it before streaming: decoded whole, channels
    averaged, the whole waveform resampled at once. (N,) float32 at 16 kHz."""
    frames, rate = sf.read(path, dtype="float32", always_2d=True)
    waveform = frames.mean(axis=1, dtype=np.float32)
    return soxr.resample(waveform, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else waveform


@torch.no_grad()
def whole_file_log_probs(model, waveform: torch.Tensor, alone: bool = False) -> torch.Tensor:
    """The stitching before streaming: the same windows, all in one padded batch (or, with
    `alone`, each in its own forward pass), the same frames kept."""
    frame = frame_samples(model)
    window_frames, margin = (
        int(WINDOW_S * SAMPLE_RATE) // frame,
        int(OVERLAP_S * SAMPLE_RATE) // frame // 2,
    )
    starts = range(0, max(waveform.numel() - WINDOW + HOP, 1), HOP)
    chunks = [waveform[start : start + WINDOW] for start in starts]
    batches = [[chunk] for chunk in chunks] if alone else [chunks]
    outputs = []
    for batch in batches:
        lengths = torch.tensor([chunk.numel() for chunk in batch])
        out = model.log_probs(torch.nn.utils.rnn.pad_sequence(batch, batch_first=True), lengths)
        outputs += [probs[: int(n)] for probs, n in zip(out.log_probs, out.lengths, strict=True)]
    kept = []
    for index, probs in enumerate(outputs):
        end = len(probs) if index == len(chunks) - 1 else window_frames - margin
        kept.append(probs[0 if index == 0 else margin : end])
    return torch.cat(kept)


STREAM_CASES = {
    # name: (frames, rate, channels, subtype)
    "two windows": (WINDOW + 1, SAMPLE_RATE, 1, "FLOAT"),
    "ends at a window edge": (WINDOW + 2 * HOP, SAMPLE_RATE, 1, "PCM_16"),
    "one past the edge": (WINDOW + 2 * HOP + 1, SAMPLE_RATE, 1, "PCM_16"),
    "11 windows": (30 * SAMPLE_RATE + 77, SAMPLE_RATE, 1, "PCM_16"),
    "stereo": (10 * SAMPLE_RATE, SAMPLE_RATE, 2, "PCM_16"),
    "8 kHz": (5 * 8_000 + 3, 8_000, 1, "PCM_16"),
    "44.1 kHz stereo": (7 * 44_100, 44_100, 2, "PCM_16"),
    "8-bit": (9 * SAMPLE_RATE, SAMPLE_RATE, 1, "PCM_U8"),
}


@pytest.fixture
def small_blocks(monkeypatch):
    """Transcription's streams decode BLOCK frames at a time instead of 65,536."""
    monkeypatch.setattr(transcribe_module, "AudioStream", partial(AudioStream, block_frames=BLOCK))


@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_streamed_log_probs_equal_the_whole_file_computation(tmp_path, case) -> None:
    frames, rate, channels, subtype = STREAM_CASES[case]
    path = tmp_path / "long.wav"
    sf.write(path, bursts(frames, rate, channels), rate, subtype=subtype)
    model = talkative_model()
    stream = AudioStream(path, block_frames=BLOCK)
    # Two windows per forward pass (9 s of audio): batches differ from the old single batch.
    streamed = _stream_log_probs(model, stream, WINDOW_S, OVERLAP_S, 9.0, stream.samples)
    waveform = torch.from_numpy(whole_file(path))
    assert stream.samples == waveform.numel() > WINDOW
    whole = whole_file_log_probs(model, waveform)
    alone = whole_file_log_probs(model, waveform, alone=True)
    assert streamed.shape == whole.shape
    assert _kept_frames(model, stream.samples, 100, 640, 12) == len(whole)  # buffer size
    # The same frames of the same windows; only how windows share a padded batch differs, and
    # the padding-invariant model then moves log-probs by float32 rounding of differently
    # blocked matmuls. That error follows the largest log-prob (|y| <= 55 here: a log-softmax
    # entry's error is set by the logits' scale, not by its own size): measured <= 1.5e-5 (4
    # ulps at 50), as much as running each window alone moves them (<= 1.7e-5, once 1.3e-5 at
    # an entry of 2.2 under MKL_CBWR=COMPATIBLE). 2**-20 of the largest is 8 ulps of it.
    tolerance = {"rtol": 0.0, "atol": 2**-20 * float(whole.abs().max())}
    torch.testing.assert_close(streamed, whole, **tolerance)
    torch.testing.assert_close(alone, whole, **tolerance)


@pytest.mark.parametrize("timestamps", [False, True], ids=["text", "timestamps"])
@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_streamed_transcription_equals_the_whole_file_one(
    tmp_path, small_blocks, case, timestamps
) -> None:
    frames, rate, channels, subtype = STREAM_CASES[case]
    path = tmp_path / "long.wav"
    sf.write(path, bursts(frames, rate, channels), rate, subtype=subtype)
    model = talkative_model()
    (result,) = transcribe(model, [path], timestamps=timestamps, window_s=WINDOW_S,
                           overlap_s=OVERLAP_S, batch_seconds=9.0)  # fmt: skip
    waveform = torch.from_numpy(whole_file(path))
    log_probs = whole_file_log_probs(model, waveform)
    ids = greedy_decode(log_probs.unsqueeze(0), torch.tensor([log_probs.size(0)]))[0]
    assert result.error is None
    assert result.text == model.tokenizer.decode(ids) and len(result.text) > 20
    assert result.audio_seconds == waveform.numel() / SAMPLE_RATE
    if not timestamps:
        assert result.words == [] and result.tokens == []
        return
    words, tokens = ctc_timings(log_probs, model.tokenizer, 0.04)
    segments = speech_segments(waveform, SAMPLE_RATE)
    assert segments  # the pauses were found, so words were snapped onto speech
    words = snap_to_speech(words, segments)
    assert len(result.words) == len(words) >= 2 and len(result.tokens) == len(tokens)
    for ours, theirs in zip(result.words + result.tokens, words + tokens, strict=True):
        # Same text and frames, so the same times; a confidence is a mean of probabilities,
        # which carry the log-probs' rounding (measured <= 1.7e-6).
        assert ours.text == theirs.text
        assert ours.start == pytest.approx(theirs.start, abs=1e-9)
        assert ours.end == pytest.approx(theirs.end, abs=1e-9)
        assert ours.confidence == pytest.approx(theirs.confidence, abs=1e-5)


@pytest.mark.parametrize("case", ["ends at a window edge", "8 kHz", "44.1 kHz stereo"])
def test_streamed_frame_energies_give_the_whole_file_speech_segments(tmp_path, case) -> None:
    frames, rate, channels, subtype = STREAM_CASES[case]
    path = tmp_path / "long.wav"
    sf.write(path, bursts(frames, rate, channels), rate, subtype=subtype)
    stream = AudioStream(path, block_frames=BLOCK)
    tally = _Tally(energies=True, expected_samples=stream.samples // 3)  # the buffer grows
    pieces = list(tally.count(stream))
    waveform = torch.from_numpy(whole_file(path))
    assert tally.samples == waveform.numel()
    # Resampling block by block gives the whole-file resampling sample for sample.
    torch.testing.assert_close(torch.from_numpy(np.concatenate(pieces)), waveform, rtol=0, atol=0)
    assert tally.segments() == speech_segments(waveform, SAMPLE_RATE)


def test_a_file_corrupt_partway_gives_an_error_result(tmp_path, small_blocks) -> None:
    """Corruption found only while decoding, after windows were already transcribed: the
    file gets an error result, the other files their text."""
    samples = bursts(30 * SAMPLE_RATE, SAMPLE_RATE)
    full = tmp_path / "full.flac"
    sf.write(full, samples, SAMPLE_RATE)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    nan = samples.copy()
    nan[20 * SAMPLE_RATE] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    model = talkative_model()
    calls = spy_on_forward_passes(model)
    results = transcribe(model, [cut, tmp_path / "nan.wav", full], window_s=WINDOW_S,
                         overlap_s=OVERLAP_S, batch_seconds=9.0)  # fmt: skip
    assert [r.path for r in results] == [str(cut), str(tmp_path / "nan.wav"), str(full)]
    assert "not a readable audio file" in results[0].error
    assert "NaN or infinite" in results[1].error
    assert results[0].text == results[1].text == "" and results[2].error is None
    assert len(results[2].text) > 20
    assert len(calls) > 3 + 6  # the bad files' first windows ran before the problem showed


def test_long_file_over_max_seconds_is_refused_from_its_header(tmp_path, monkeypatch) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, bursts(30 * SAMPLE_RATE, SAMPLE_RATE), SAMPLE_RATE)

    def never_decode(*args, **kwargs):
        raise AssertionError("decoded a file that the header already ruled out")

    monkeypatch.setattr(sf.SoundFile, "read", never_decode)
    (result,) = transcribe(tiny_model(), [path], window_s=WINDOW_S, overlap_s=OVERLAP_S,
                           max_seconds=20.0)  # fmt: skip
    assert "longer than the 20.0 s limit" in result.error


def spy_on_forward_passes(model) -> list[tuple[int, int]]:
    """Record the (batch, samples) shape of every waveform batch the model is given."""
    calls: list[tuple[int, int]] = []
    forward = model.log_probs

    def recording(waveforms, lengths):
        calls.append(tuple(waveforms.shape))
        return forward(waveforms, lengths)

    model.log_probs = recording
    return calls


def test_memory_held_for_a_long_file_does_not_grow_with_its_length(tmp_path, monkeypatch):
    """What a long file holds at once, counted instead of timed or read from RSS: decoded
    blocks of at most BLOCK frames, forward passes of at most `batch_seconds` of audio, and
    never the whole waveform; the same bounds for a file of 4x the length (and 4x the passes)."""
    model = tiny_model()
    reads: list[int] = []
    read = sf.SoundFile.read

    def recording_read(self, *args, **kwargs):
        frames = read(self, *args, **kwargs)
        reads.append(frames.shape[0])
        return frames

    def never_whole(self):
        raise AssertionError(f"{self.path}: a long file was read whole")

    monkeypatch.setattr(sf.SoundFile, "read", recording_read)
    monkeypatch.setattr(AudioStream, "read", never_whole)
    monkeypatch.setattr(transcribe_module, "AudioStream", partial(AudioStream, block_frames=BLOCK))
    batch_seconds = 9.0  # two 4 s windows a pass
    held = {}
    for seconds in (30, 120):
        path = tmp_path / f"{seconds}.wav"
        sf.write(path, bursts(seconds * SAMPLE_RATE, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
        calls = spy_on_forward_passes(model)
        reads.clear()
        (result,) = transcribe(model, [path], timestamps=True, window_s=WINDOW_S,
                               overlap_s=OVERLAP_S, batch_seconds=batch_seconds)  # fmt: skip
        assert result.error is None and result.audio_seconds == seconds
        windows = len(range(0, seconds * SAMPLE_RATE - WINDOW + HOP, HOP))
        assert sum(batch for batch, _ in calls) == windows
        assert len(calls) == -(-windows // 2)
        assert max(batch * samples for batch, samples in calls) <= batch_seconds * SAMPLE_RATE
        assert max(reads) <= BLOCK
        held[seconds] = (max(batch * samples for batch, samples in calls), max(reads))
    assert held[30] == held[120] == (2 * WINDOW, BLOCK)


def test_a_file_without_its_length_in_the_header_gives_an_error_result(tmp_path) -> None:
    path = tmp_path / "a.flac"
    sf.write(path, bursts(12 * SAMPLE_RATE, SAMPLE_RATE), SAMPLE_RATE)
    unknown, known = transcribe(tiny_model(), [without_length(path), path], window_s=WINDOW_S,
                                overlap_s=OVERLAP_S)  # fmt: skip
    assert "does not give the length" in unknown.error and known.error is None
