"""Audio files -> float32 mono waveforms at the model's sample rate.

Decoding is soundfile's (libsndfile: WAV, FLAC, OGG/Vorbis, ...), resampling soxr's. Every way
a file can be unusable raises `AudioError` with a one-line message that names the file, so a
data loader can skip it and say why; nothing bad reaches the feature frontend.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = ["SAMPLE_RATE", "AudioError", "audio_duration", "load_audio"]

SAMPLE_RATE = 16_000  # Hz, the rate every model in the paper is trained at

# A WAV data chunk whose size field holds one of these was written by a streaming encoder
# that could not seek back to fill it in: the length is unknown, not a promise.
_UNKNOWN_WAV_DATA_SIZES = (0, 0xFFFFFFFF)
_MAX_WAV_CHUNKS = 64  # stop walking RIFF chunks after this many: a corrupt header, not audio


class AudioError(ValueError):
    """A file that cannot become a waveform; the message is one line naming the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # libsndfile messages may hold newlines
        super().__init__(f"{self.path}: {self.reason}")


def audio_duration(path: str | Path) -> float:
    """Seconds of audio in `path`, from its header alone (nothing is decoded)."""
    path = _existing_file(path)
    try:
        return float(sf.info(str(path)).duration)
    except sf.SoundFileError as error:
        raise AudioError(path, f"not a readable audio file ({error})") from None


def load_audio(
    path: str | Path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None
) -> np.ndarray:
    """Decode `path` to a float32 mono waveform (N,) at `sample_rate`.

    Channels are averaged; a file at another rate is resampled with soxr. Raises `AudioError`
    for a missing, unreadable, empty, truncated or non-finite file, and for one longer than
    `max_seconds`, which is judged from the header before anything is decoded.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate={sample_rate!r} must be positive")
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds={max_seconds!r} must be positive or None")
    path = _existing_file(path)
    native_rate, frames = _decode(path, max_seconds)
    if frames.shape[0] == 0:
        raise AudioError(path, "contains no audio samples (empty or truncated)")
    if not np.isfinite(frames).all():
        raise AudioError(path, "contains NaN or infinite samples")
    waveform = frames.mean(axis=1, dtype=np.float32)  # (N, C) -> (N,)
    if native_rate != sample_rate:
        waveform = soxr.resample(waveform, native_rate, sample_rate)
    return np.ascontiguousarray(waveform, dtype=np.float32)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "no such file")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    return path


def _decode(path: Path, max_seconds: float | None) -> tuple[int, np.ndarray]:
    """(native sample rate, samples (N, C) float32), after the header checks."""
    try:
        with sf.SoundFile(str(path)) as audio:
            # The same header fields sf.info reads: an hours-long file stops here, undecoded.
            seconds = audio.frames / audio.samplerate
            if max_seconds is not None and seconds > max_seconds:
                raise AudioError(path, f"{seconds:.1f} s is longer than the {max_seconds} s limit")
            if audio.format == "WAV":
                _check_wav_complete(path)
            declared = audio.frames
            frames = audio.read(dtype="float32", always_2d=True)
            native_rate = audio.samplerate
    except sf.SoundFileError as error:
        raise AudioError(path, f"not a readable audio file ({error})") from None
    if declared > 0 and frames.shape[0] < declared:
        raise AudioError(path, f"truncated: header promises {declared} frames, read {len(frames)}")
    return native_rate, frames


def _check_wav_complete(path: Path) -> None:
    """Raise if the WAV data chunk declares more bytes than the file holds.

    libsndfile quietly shrinks its frame count to what the file holds, so a WAV cut short by a
    failed copy would load as a shorter clip that no longer matches its transcript.
    """
    size = path.stat().st_size
    with path.open("rb") as file:
        header = file.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # RF64 / Wave64 and friends: leave them to libsndfile
        for _ in range(_MAX_WAV_CHUNKS):
            chunk = file.read(8)
            if len(chunk) < 8:
                return
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                present = size - file.tell()
                if chunk_size not in _UNKNOWN_WAV_DATA_SIZES and present < chunk_size:
                    raise AudioError(
                        path,
                        f"truncated: data chunk declares {chunk_size} bytes, {present} present",
                    )
                return
            file.seek(chunk_size + (chunk_size & 1), 1)  # chunks are padded to even sizes
