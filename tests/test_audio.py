"""load_audio / audio_duration on files built with soundfile: every format quirk and failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from squeezer.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio


def tone(seconds: float, rate: int, hz: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine (N,) at `rate`."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE, **kwargs) -> Path:
    sf.write(path, samples, rate, **kwargs)
    return path


def dominant_hz(waveform: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_formats_load_as_float32_mono(tmp_path: Path, suffix: str) -> None:
    samples = tone(0.5, SAMPLE_RATE)
    audio = load_audio(write(tmp_path / f"a{suffix}", samples))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == len(samples)
    if suffix != ".ogg":  # Vorbis is lossy
        # 16-bit integer quantisation, not float kernels: about one step, 1 / 32768 = 3.05e-5
        # (measured 3.0e-5 for WAV, 1.5e-5 for FLAC).
        np.testing.assert_allclose(audio, samples, atol=1e-4)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left, right = tone(0.25, SAMPLE_RATE, 440), tone(0.25, SAMPLE_RATE, 660)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    # A float32 mean of two is (l + r) / 2 rounded once, as here: equal (measured 0).
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-7)


def test_8_bit_unsigned_pcm(tmp_path: Path) -> None:
    samples = tone(0.25, SAMPLE_RATE)
    audio = load_audio(write(tmp_path / "u8.wav", samples, subtype="PCM_U8"))
    assert audio.dtype == np.float32
    # Centred on zero (unsigned offset removed), within one 8-bit step of the original
    # (libsndfile truncates: integer maths, measured 0.00779 of the 0.00781 step).
    np.testing.assert_allclose(audio, samples, atol=1 / 128 + 1e-6)


@pytest.mark.parametrize("rate", [8_000, 44_100])
def test_other_rates_are_resampled(tmp_path: Path, rate: int) -> None:
    audio = load_audio(write(tmp_path / "r.wav", tone(1.0, rate, hz=1000.0), rate))
    assert audio.dtype == np.float32
    assert abs(len(audio) - SAMPLE_RATE) <= 1
    assert abs(dominant_hz(audio, SAMPLE_RATE) - 1000.0) <= 1.0  # 1 Hz bins over 1 s
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)  # soxr ripple (measured 0.004)


def test_target_rate_argument(tmp_path: Path) -> None:
    audio = load_audio(write(tmp_path / "r.wav", tone(1.0, SAMPLE_RATE)), sample_rate=8_000)
    assert abs(len(audio) - 8_000) <= 1


def test_duration_from_header(tmp_path: Path) -> None:
    path = write(tmp_path / "d.flac", tone(1.5, 44_100), 44_100)
    assert audio_duration(path) == pytest.approx(1.5)  # 66150 / 44100, from the header


def assert_audio_error(path: Path, match: str, **kwargs) -> None:
    with pytest.raises(AudioError, match=match) as caught:
        load_audio(path, **kwargs)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    assert_audio_error(tmp_path / "nope.wav", "no such file")
    with pytest.raises(AudioError, match="no such file"):
        audio_duration(tmp_path / "nope.wav")


def test_directory(tmp_path: Path) -> None:
    assert_audio_error(tmp_path, "not a regular file")


def test_text_file_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "text.wav"
    path.write_text("this is a transcript, not audio\n" * 20)
    assert_audio_error(path, "not a readable audio file")
    with pytest.raises(AudioError, match="not a readable audio file"):
        audio_duration(path)


def test_empty_file(tmp_path: Path) -> None:
    assert_audio_error(write(tmp_path / "empty.wav", np.zeros(0, np.float32)), "no audio samples")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    assert_audio_error(path, "not a readable audio file")


def test_wav_cut_in_half(tmp_path: Path) -> None:
    full = write(tmp_path / "full.wav", tone(1.0, SAMPLE_RATE), subtype="PCM_16")
    data = full.read_bytes()
    half = tmp_path / "half.wav"
    half.write_bytes(data[: len(data) // 2])
    assert_audio_error(half, "truncated")


def test_wav_header_only(tmp_path: Path) -> None:
    full = write(tmp_path / "full.wav", tone(1.0, SAMPLE_RATE), subtype="PCM_16")
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(full.read_bytes()[:44])
    assert_audio_error(header_only, "truncated")


def test_flac_cut_in_half(tmp_path: Path) -> None:
    full = write(tmp_path / "full.flac", np.random.default_rng(0).uniform(-0.5, 0.5, 16_000))
    data = full.read_bytes()
    half = tmp_path / "half.flac"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=str(half)):
        load_audio(half)


def test_wav_with_unknown_data_size_still_loads(tmp_path: Path) -> None:
    # A streaming writer (e.g. `ffmpeg ... -f wav -`) leaves 0xFFFFFFFF as the data size.
    samples = tone(0.25, SAMPLE_RATE)
    path = write(tmp_path / "stream.wav", samples, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data_at = data.index(b"data")
    data[data_at + 4 : data_at + 8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    assert len(load_audio(path)) == len(samples)


def test_non_finite_samples(tmp_path: Path) -> None:
    samples = tone(0.1, SAMPLE_RATE)
    samples[10] = np.nan
    assert_audio_error(write(tmp_path / "nan.wav", samples, subtype="FLOAT"), "NaN or infinite")
    samples[10] = np.inf
    assert_audio_error(write(tmp_path / "inf.wav", samples, subtype="FLOAT"), "NaN or infinite")


def test_too_long_is_rejected_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / "long.wav", tone(2.0, SAMPLE_RATE))

    def never_decode(*args, **kwargs):
        raise AssertionError("decoded a file that the header already ruled out")

    monkeypatch.setattr(sf.SoundFile, "read", never_decode)
    assert_audio_error(path, "longer than", max_seconds=1.5)


def test_max_seconds_allows_shorter_files(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.wav", tone(1.0, SAMPLE_RATE))
    assert len(load_audio(path, max_seconds=1.0)) == SAMPLE_RATE


@pytest.mark.parametrize("kwargs", [{"sample_rate": 0}, {"max_seconds": 0.0}])
def test_bad_arguments_name_the_field(tmp_path: Path, kwargs: dict) -> None:
    path = write(tmp_path / "ok.wav", tone(0.1, SAMPLE_RATE))
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        load_audio(path, **kwargs)


def test_audio_error_is_a_value_error() -> None:
    assert issubclass(AudioError, ValueError)
    assert str(AudioError("x.wav", "bad\nthing")) == "x.wav: bad thing"
