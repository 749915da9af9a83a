"""load_audio / AudioStream / audio_duration on files built with soundfile: every format quirk
and failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from squeezer.audio import SAMPLE_RATE, AudioError, AudioStream, audio_duration, load_audio


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


def assert_audio_error(path: Path, match: str, kind: str, **kwargs) -> None:
    """One line naming the file, and the category a data loader counts it under."""
    with pytest.raises(AudioError, match=match) as caught:
        load_audio(path, **kwargs)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert caught.value.kind == kind


def test_missing_file(tmp_path: Path) -> None:
    assert_audio_error(tmp_path / "nope.wav", "no such file", "missing file")
    with pytest.raises(AudioError, match="no such file"):
        audio_duration(tmp_path / "nope.wav")


def test_directory(tmp_path: Path) -> None:
    assert_audio_error(tmp_path, "not a regular file", "missing file")


def test_text_file_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "text.wav"
    path.write_text("this is a transcript, not audio\n" * 20)
    assert_audio_error(path, "not a readable audio file", "unreadable audio")
    with pytest.raises(AudioError, match="not a readable audio file"):
        audio_duration(path)


def test_empty_file(tmp_path: Path) -> None:
    assert_audio_error(
        write(tmp_path / "empty.wav", np.zeros(0, np.float32)), "no audio samples", "empty audio"
    )


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    assert_audio_error(path, "not a readable audio file", "unreadable audio")


def test_wav_cut_in_half(tmp_path: Path) -> None:
    full = write(tmp_path / "full.wav", tone(1.0, SAMPLE_RATE), subtype="PCM_16")
    data = full.read_bytes()
    half = tmp_path / "half.wav"
    half.write_bytes(data[: len(data) // 2])
    assert_audio_error(half, "truncated", "truncated or corrupt audio")


def test_wav_header_only(tmp_path: Path) -> None:
    full = write(tmp_path / "full.wav", tone(1.0, SAMPLE_RATE), subtype="PCM_16")
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(full.read_bytes()[:44])
    assert_audio_error(header_only, "truncated", "truncated or corrupt audio")


def test_flac_cut_in_half(tmp_path: Path) -> None:
    full = write(tmp_path / "full.flac", np.random.default_rng(0).uniform(-0.5, 0.5, 16_000))
    data = full.read_bytes()
    half = tmp_path / "half.flac"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=str(half)) as caught:
        load_audio(half)
    assert caught.value.kind == "truncated or corrupt audio"  # the header parsed, not the rest


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
    assert_audio_error(
        write(tmp_path / "nan.wav", samples, subtype="FLOAT"),
        "NaN or infinite",
        "non-finite samples",
    )
    samples[10] = np.inf
    assert_audio_error(
        write(tmp_path / "inf.wav", samples, subtype="FLOAT"),
        "NaN or infinite",
        "non-finite samples",
    )


def test_too_long_is_rejected_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / "long.wav", tone(2.0, SAMPLE_RATE))

    def never_decode(*args, **kwargs):
        raise AssertionError("decoded a file that the header already ruled out")

    monkeypatch.setattr(sf.SoundFile, "read", never_decode)
    assert_audio_error(path, "longer than", "too long", max_seconds=1.5)


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
    with pytest.raises(ValueError, match="kind='odd' is not one of"):
        AudioError("x.wav", "bad", "odd")


def whole_file(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decoded whole, channels averaged, resampled at once: (N,) float32."""
    frames, native = sf.read(path, dtype="float32", always_2d=True)
    waveform = frames.mean(axis=1, dtype=np.float32)
    return soxr.resample(waveform, native, rate) if native != rate else waveform


@pytest.mark.parametrize("block_frames", [1_000, 65_536])
@pytest.mark.parametrize(
    ("rate", "channels", "subtype"),
    [(SAMPLE_RATE, 1, "PCM_16"), (44_100, 2, "PCM_16"), (8_000, 1, "PCM_U8"), (22_050, 2, "FLOAT")],
)
def test_stream_pieces_are_the_whole_file(
    tmp_path: Path, rate: int, channels: int, subtype: str, block_frames: int
) -> None:
    samples = np.stack([tone(3.3, rate, hz=300.0 + 200 * c) for c in range(channels)], axis=1)
    path = write(tmp_path / "a.wav", samples, rate, subtype=subtype)
    stream = AudioStream(path, block_frames=block_frames)
    pieces = list(stream)
    assert all(piece.dtype == np.float32 and piece.ndim == 1 for piece in pieces)
    assert len(pieces) > 1 if block_frames < len(samples) else len(pieces) >= 1
    # One soxr stream carries its filter state across blocks: equal to resampling the whole
    # file at once, sample for sample (measured: identical), and as long as the header says.
    np.testing.assert_array_equal(np.concatenate(pieces), whole_file(path))
    assert stream.samples == sum(len(piece) for piece in pieces)
    np.testing.assert_array_equal(load_audio(path), whole_file(path))


def test_stream_checks_the_header_when_opened(tmp_path: Path, monkeypatch) -> None:
    long = write(tmp_path / "long.wav", tone(2.0, SAMPLE_RATE))
    full = write(tmp_path / "full.wav", tone(1.0, SAMPLE_RATE), subtype="PCM_16")
    half = tmp_path / "half.wav"
    half.write_bytes(full.read_bytes()[: full.stat().st_size // 2])

    def never_decode(*args, **kwargs):
        raise AssertionError("decoded a file that the header already ruled out")

    monkeypatch.setattr(sf.SoundFile, "read", never_decode)
    with pytest.raises(AudioError, match="longer than"):
        AudioStream(long, max_seconds=1.5)
    with pytest.raises(AudioError, match="truncated"):
        AudioStream(half)
    with pytest.raises(AudioError, match="no such file"):
        AudioStream(tmp_path / "nope.wav")
    assert AudioStream(long).samples == 2 * SAMPLE_RATE
    with pytest.raises(ValueError, match="block_frames"):
        AudioStream(long, block_frames=0)


def test_stream_raises_where_decoding_finds_the_problem(tmp_path: Path) -> None:
    """A NaN in the third block: the first two blocks' pieces come out, then the error."""
    samples = tone(1.0, SAMPLE_RATE)
    samples[2_500] = np.nan
    path = write(tmp_path / "nan.wav", samples, subtype="FLOAT")
    pieces = []
    with pytest.raises(AudioError, match="NaN or infinite"):
        pieces.extend(AudioStream(path, block_frames=1_000))
    assert [len(piece) for piece in pieces] == [1_000, 1_000]
    full = write(tmp_path / "full.flac", np.random.default_rng(0).uniform(-0.5, 0.5, 48_000))
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    pieces.clear()
    with pytest.raises(AudioError, match="not a readable audio file"):
        pieces.extend(AudioStream(cut, block_frames=1_000))
    assert len(pieces) > 10  # found partway through
    with pytest.raises(AudioError, match="no audio samples"):
        list(AudioStream(write(tmp_path / "empty.wav", np.zeros(0, np.float32))))


def without_length(path: Path) -> Path:
    """The FLAC at `path` with STREAMINFO's total-samples field zeroed, as a streaming encoder
    leaves it: libsndfile then reports SF_COUNT_MAX frames (length unknown)."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first, at byte 8
    # Bytes 18..25: 20 bits of rate, 3 of channels, 5 of bits per sample, 36 of total samples.
    data[21] &= 0xF0
    data[22:26] = bytes(4)
    out = path.with_name(f"unknown-{path.name}")
    out.write_bytes(bytes(data))
    return out


def test_flac_without_its_length_is_refused_when_opened(tmp_path: Path) -> None:
    """libsndfile reports SF_COUNT_MAX frames; soundfile would fail reading its last block
    (and `load_audio` used to crash allocating that many): a one-line error instead."""
    path = without_length(write(tmp_path / "a.flac", tone(2.5, SAMPLE_RATE)))
    assert sf.info(str(path)).frames == 2**63 - 1
    assert_audio_error(path, "does not give the length", "unreadable audio")
    with pytest.raises(AudioError, match="does not give the length"):
        AudioStream(path)
