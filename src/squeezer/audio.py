"""Audio files -> float32 mono waveforms at the model's sample rate.

Decoding is soundfile's (libsndfile: WAV, FLAC, OGG/Vorbis, ...), resampling soxr's. Every way
a file can be unusable raises `AudioError` with a one-line message that names the file, so a
data loader can skip it and say why; nothing bad reaches the feature frontend. `load_audio`
gives the whole waveform; `AudioStream` gives the same samples a block at a time, for files too
long to hold (an hour of 16 kHz float32 is 230 MB, its decoded 44.1 kHz stereo 1.3 GB).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

AUDIO_ERROR_KINDS = (
    "missing file",
    "unreadable audio",  # the header does not parse: not audio, or not a format libsndfile reads
    "truncated or corrupt audio",  # the header parses, the samples do not all decode
    "empty audio",
    "non-finite samples",
    "too long",
)

__all__ = [
    "AUDIO_ERROR_KINDS",
    "SAMPLE_RATE",
    "AudioError",
    "AudioStream",
    "audio_duration",
    "load_audio",
]

SAMPLE_RATE = 16_000  # Hz, the rate every model in the paper is trained at

# A WAV data chunk whose size field holds one of these was written by a streaming encoder
# that could not seek back to fill it in: the length is unknown, not a promise.
_UNKNOWN_WAV_DATA_SIZES = (0, 0xFFFFFFFF)
_MAX_WAV_CHUNKS = 64  # stop walking RIFF chunks after this many: a corrupt header, not audio
BLOCK_FRAMES = 1 << 16  # native frames decoded at a time: 4 s at 16 kHz, 1 MiB of stereo
_UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's frame count (SF_COUNT_MAX) for "length unknown"


class AudioError(ValueError):
    """A file that cannot become a waveform; the message is one line naming the file.

    `kind` is the category a data loader counts it under, one of `AUDIO_ERROR_KINDS`.
    """

    def __init__(self, path: str | Path, reason: str, kind: str = "unreadable audio") -> None:
        if kind not in AUDIO_ERROR_KINDS:
            raise ValueError(f"kind={kind!r} is not one of {', '.join(AUDIO_ERROR_KINDS)}")
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # libsndfile messages may hold newlines
        self.kind = kind
        super().__init__(f"{self.path}: {self.reason}")


def audio_duration(path: str | Path) -> float:
    """Seconds of audio in `path`, from its header alone (nothing is decoded)."""
    import soundfile as sf  # here, not at the top: the sequence tasks import this module's
    # constants without the speech extra

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
    for a missing, unreadable, empty, truncated or non-finite file, one whose header does not
    give its length, and one longer than `max_seconds`, which is judged from the header before
    anything is decoded.
    """
    return AudioStream(path, sample_rate, max_seconds).read()


class AudioStream:
    """`path` decoded a block at a time: consecutive float32 mono pieces at `sample_rate`.

        stream = AudioStream(path, max_seconds=7200)   # header checks only, nothing decoded
        for piece in stream:                           # (n_i,) float32; n_i varies
            ...

    Opening raises `AudioError` for what the header tells (a missing or unreadable file, one
    longer than `max_seconds` or of unknown length, a WAV whose data chunk is cut short) and
    holds no file open.
    Iterating decodes `block_frames` native frames at a time, averages the channels and
    resamples through one soxr stream, which carries the filter state across blocks: the
    concatenated pieces equal `soxr.resample` of the whole file sample for sample. It raises
    `AudioError` for what only decoding finds (a decode error, NaN or infinite samples, fewer
    frames than the header declared, none at all), after the pieces before the bad block,
    so a consumer may have used those already. Memory is one block, whatever the length.
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate: int = SAMPLE_RATE,
        max_seconds: float | None = None,
        block_frames: int = BLOCK_FRAMES,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate={sample_rate!r} must be positive")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds={max_seconds!r} must be positive or None")
        if block_frames <= 0:
            raise ValueError(f"block_frames={block_frames!r} must be positive")
        import soundfile as sf

        self.path = _existing_file(path)
        self.sample_rate = sample_rate
        self.block_frames = block_frames
        try:
            with sf.SoundFile(str(self.path)) as audio:
                # The same header fields sf.info reads: an hours-long file stops here, undecoded.
                self.native_rate: int = audio.samplerate
                if audio.frames >= _UNKNOWN_FRAMES:
                    # soundfile cannot read such a file to its end (its seek past the last
                    # block fails), and what it would hold cannot be judged: refuse it whole.
                    raise AudioError(self.path, "the header does not give the length (a FLAC "
                                     "from a streaming encoder?); re-encode the file")  # fmt: skip
                self.frames: int = audio.frames  # as declared; checked against what decodes
                seconds = audio.frames / audio.samplerate
                if max_seconds is not None and seconds > max_seconds:
                    raise AudioError(
                        self.path,
                        f"{seconds:.1f} s is longer than the {max_seconds} s limit",
                        "too long",
                    )
                if audio.format == "WAV":
                    _check_wav_complete(self.path)
        except sf.SoundFileError as error:
            raise AudioError(self.path, f"not a readable audio file ({error})") from None

    @property
    def samples(self) -> int:
        """Samples at `sample_rate` that the header promises (soxr's output length)."""
        if self.native_rate == self.sample_rate:
            return self.frames
        return int(self.frames * self.sample_rate / self.native_rate + 0.5)

    def read(self) -> np.ndarray:
        """The whole file as one waveform (N,) float32 (what `load_audio` returns)."""
        pieces = list(self)
        return np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32)

    def __iter__(self) -> Iterator[np.ndarray]:
        import soundfile as sf
        import soxr

        resampler = None
        if self.native_rate != self.sample_rate:
            resampler = soxr.ResampleStream(self.native_rate, self.sample_rate, 1, "float32")
        decoded = 0
        try:
            with sf.SoundFile(str(self.path)) as audio:
                while True:
                    frames = audio.read(self.block_frames, dtype="float32", always_2d=True)
                    if frames.shape[0] == 0:
                        break
                    if not np.isfinite(frames).all():
                        raise AudioError(
                            self.path, "contains NaN or infinite samples", "non-finite samples"
                        )
                    decoded += frames.shape[0]
                    piece = frames.mean(axis=1, dtype=np.float32)  # (n, C) -> (n,)
                    if resampler is not None:
                        piece = resampler.resample_chunk(piece)
                    if piece.size:
                        yield piece
        except sf.SoundFileError as error:  # after the header parsed: the data is damaged
            raise AudioError(
                self.path, f"not a readable audio file ({error})", "truncated or corrupt audio"
            ) from None
        if self.frames > 0 and decoded < self.frames:
            raise AudioError(
                self.path,
                f"truncated: header promises {self.frames} frames, read {decoded}",
                "truncated or corrupt audio",
            )
        if decoded == 0:
            raise AudioError(
                self.path, "contains no audio samples (empty or truncated)", "empty audio"
            )
        if resampler is not None:  # the filter's delay line: the last output samples
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if tail.size:
                yield tail


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "no such file", "missing file")
    if not path.is_file():
        raise AudioError(path, "not a regular file", "missing file")
    return path


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
                        "truncated or corrupt audio",
                    )
                return
            file.seek(chunk_size + (chunk_size & 1), 1)  # chunks are padded to even sizes
