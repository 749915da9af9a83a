"""Transcribe audio files: batched by length, long files in overlapping windows, with times.

    results = transcribe(model, paths, timestamps=True)   # AsrModel or OnnxCtcModel

Files that fit one window are read a group at a time, sorted by length and batched up to
`batch_seconds` of audio per forward pass (the padding-invariant model gives each file exactly
what it gets alone). A file longer than one window is cut into windows of `window_s` seconds
that overlap by `overlap_s`; each window's log-probabilities keep only the frames away from its
edges (where the encoder saw little context), the kept frames tile the whole file exactly once,
and the stitched sequence is decoded as one utterance, so no word is cut or repeated at a window
boundary and word times stay exact. A long file is never held whole: it is decoded a block at a
time (`AudioStream`), its windows are cut as the samples arrive and run `batch_seconds` of audio
per forward pass, and only the kept log-probs (and, for word times, 10 ms frame energies) stay,
so memory grows with the output, not the audio. A file that cannot be read, or turns out
partway through to be corrupt, gets a result with its error and an empty text; the others are
still transcribed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from squeezer.audio import SAMPLE_RATE, AudioError, AudioStream
from squeezer.decoding import greedy_decode
from squeezer.timestamps import (
    SPEECH_FRAME_S,
    Timing,
    ctc_timings,
    frame_energies,
    segments_from_energies,
    snap_to_speech,
    speech_segments,
)

if TYPE_CHECKING:
    from squeezer.model import AsrModel
    from squeezer.onnx_model import OnnxCtcModel

__all__ = ["Transcription", "frame_samples", "stitched_log_probs", "summarize", "transcribe"]

READ_AHEAD = 64  # files read, sorted and batched at a time: bounds memory on any folder size
# A long file's output buffers are sized up front from its header, up to this much audio (a
# header that lies, or files longer than this, cost a copy as the buffers grow, not memory).
PREALLOCATE_SAMPLES = 3600 * SAMPLE_RATE


@dataclass(frozen=True)
class Transcription:
    """One file: its text, duration, wall time (its share of a batch), and with timestamps
    its words and tokens. `error` names why a file could not be read (its text is then "")."""

    path: str
    text: str
    audio_seconds: float
    seconds: float
    words: list[Timing] = field(default_factory=list)
    tokens: list[Timing] = field(default_factory=list)
    error: str | None = None

    @property
    def real_time_factor(self) -> float:
        return self.seconds / max(self.audio_seconds, 1e-9)

    def to_dict(self) -> dict:
        result = {"path": self.path, "text": self.text, "audio_seconds": self.audio_seconds,
                  "seconds": self.seconds, "real_time_factor": self.real_time_factor}  # fmt: skip
        if self.error is not None:
            result["error"] = self.error
        if self.words or self.tokens:
            result["words"] = [word.to_dict() for word in self.words]
            result["tokens"] = [token.to_dict() for token in self.tokens]
        return result


def frame_samples(model: AsrModel | OnnxCtcModel) -> int:
    """Audio samples per encoder output frame (hop x subsampling, x2 under a bare reduction)."""
    probe = torch.tensor([SAMPLE_RATE * 60])
    return round(int(probe[0]) / int(model.frames_for_samples(probe)[0]))


def stitched_log_probs(
    model: AsrModel | OnnxCtcModel,
    waveform: torch.Tensor,
    window_s: float = 20.0,
    overlap_s: float = 2.0,
    batch_seconds: float = 120.0,
) -> torch.Tensor:
    """waveform (N,) -> log-probs (T', V + 1) of the whole file, computed window by window,
    at most `batch_seconds` of windows (and at least one) per forward pass."""
    return _stream_log_probs(
        model, [waveform], window_s, overlap_s, batch_seconds, waveform.numel()
    )


@torch.no_grad()
def _stream_log_probs(
    model: AsrModel | OnnxCtcModel,
    pieces: Iterable[np.ndarray | torch.Tensor],
    window_s: float,
    overlap_s: float,
    batch_seconds: float,
    expected_samples: int,
) -> torch.Tensor:
    """Consecutive pieces (n_i,) of one waveform -> its stitched log-probs (T', V + 1).

    Windows of `window_s` start every `window_s - overlap_s` (in whole encoder frames); each
    keeps its frames but for `margin` at an edge it shares with a neighbour. They are cut
    from the pieces as these arrive and run `batch_seconds` of audio at a time, so what is
    held at once is one batch of windows and the kept frames (the output), whatever the
    length. A waveform of one window is one plain forward pass. `expected_samples` (what
    the header promises) sizes the output buffer; a wrong promise costs a copy, not a result.
    """
    frame = frame_samples(model)
    window_frames = int(window_s * SAMPLE_RATE) // frame
    margin = int(overlap_s * SAMPLE_RATE) // frame // 2
    if window_frames <= 2 * margin:
        raise ValueError(f"window_s={window_s} must exceed overlap_s={overlap_s}")
    if batch_seconds <= 0:
        raise ValueError(f"batch_seconds={batch_seconds!r} must be positive")
    window, hop = window_frames * frame, (window_frames - 2 * margin) * frame
    per_batch = max(1, int(batch_seconds * SAMPLE_RATE) // window)  # windows per forward pass
    expected = min(expected_samples, PREALLOCATE_SAMPLES)
    kept = _Rows(_kept_frames(model, expected, window_frames, frame, margin))
    batch: list[torch.Tensor] = []
    index = 0  # of the batch's first window in the file
    for chunk, last in _windows(pieces, window, hop):
        batch.append(chunk)
        if len(batch) < per_batch and not last:
            continue
        outputs = _batch_log_probs(model, batch)  # each (frames_i, V + 1)
        for position, log_probs in enumerate(outputs):
            first = 0 if index == 0 else margin
            final = last and position == len(batch) - 1
            end = log_probs.size(0) if final else window_frames - margin
            kept.append(log_probs[first:end])
            index += 1
        batch = []
    if not kept.size:
        raise ValueError("no audio samples to transcribe")
    return kept.rows()  # (T', V + 1)


def _kept_frames(
    model: AsrModel | OnnxCtcModel, samples: int, window_frames: int, frame: int, margin: int
) -> int:
    """How many frames the windows of a waveform of `samples` keep: its stitched length."""
    window, hop = window_frames * frame, (window_frames - 2 * margin) * frame
    if samples <= window:
        return int(model.frames_for_samples(torch.tensor([samples]))[0])
    windows = len(range(0, samples - window + hop, hop))
    last = int(model.frames_for_samples(torch.tensor([samples - (windows - 1) * hop]))[0])
    return window_frames - margin + (windows - 2) * (window_frames - 2 * margin) + last - margin


class _Rows:
    """Rows (n_i, ...) appended into one buffer of `capacity` rows, grown by half if they
    outnumber it: a long file's output as one allocation made up front.

    Kept as hundreds of window-sized pieces, the output would sit in the heap between the
    batches' short-lived buffers, which glibc then cannot put back together: measured, an
    hour's peak RSS was 84 MiB above ten minutes' for 8 MiB more output (with glibc's mmap
    threshold pinned, 7 MiB); with this buffer, 8-27 MiB (docs/benchmarks.md, Long audio)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1)
        self.data: torch.Tensor | None = None
        self.size = 0

    def append(self, rows: torch.Tensor) -> None:
        end = self.size + rows.size(0)
        if self.data is None:
            self.data = rows.new_empty((max(self.capacity, end), *rows.shape[1:]))
        elif end > self.data.size(0):
            grown = rows.new_empty((max(self.data.size(0) * 3 // 2, end), *rows.shape[1:]))
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = rows
        self.size = end

    def rows(self) -> torch.Tensor:
        """The rows appended, (sum n_i, ...)."""
        if self.data is None:
            raise ValueError("no rows appended")
        return self.data[: self.size]


def _windows(
    pieces: Iterable[np.ndarray | torch.Tensor], window: int, hop: int
) -> Iterator[tuple[torch.Tensor, bool]]:
    """Consecutive pieces (n_i,) of one waveform (N,) -> its windows, each with whether it is
    the last: up to `window` samples from every multiple of `hop`, until one reaches the end.

    These are the windows at `range(0, N - window + hop, hop)` (for N <= window the whole
    waveform), found without knowing N: a window is not the last as soon as a sample after it
    arrives, and the last once the pieces run out. Held at once: one window and one piece."""
    buffer = np.zeros(0, np.float32)  # the samples from the next window's start on
    for piece in pieces:
        if isinstance(piece, torch.Tensor):
            piece = piece.detach().cpu().numpy()
        buffer = np.concatenate([buffer, piece]) if buffer.size else piece
        while buffer.size > window:  # a sample after this window: another window follows
            yield torch.from_numpy(buffer[:window]), False
            buffer = buffer[hop:]
    if buffer.size:
        yield torch.from_numpy(buffer), True


def transcribe(
    model: AsrModel | OnnxCtcModel,
    paths: Sequence[str | Path],
    *,
    timestamps: bool = False,
    batch_seconds: float = 120.0,
    window_s: float = 20.0,
    overlap_s: float = 2.0,
    max_seconds: float | None = None,
    progress: bool = False,
) -> list[Transcription]:
    """Greedy transcription of each file with the model's tokenizer, in the order given.

    Args:
        timestamps: also give each word's and token's start, end and confidence.
        batch_seconds: audio per forward pass: files that fit one window are batched up to
            this, a long file's windows likewise (at least one window a pass).
        window_s, overlap_s: the windows of files longer than `window_s`.
        max_seconds: refuse (as unreadable) files longer than this.
        progress: a progress bar over files on stderr.
    """
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; load it with squeezer.load_model(path)")
    if batch_seconds <= 0:
        raise ValueError(f"batch_seconds={batch_seconds!r} must be positive")
    frame_seconds = frame_samples(model) / SAMPLE_RATE
    results: list[Transcription] = []
    bar = tqdm(total=len(paths), unit="file", desc="transcribe", disable=not progress)
    for start in range(0, len(paths), READ_AHEAD):
        group = list(paths[start : start + READ_AHEAD])
        for result in _transcribe_group(model, group, timestamps, frame_seconds, batch_seconds,
                                        window_s, overlap_s, max_seconds):  # fmt: skip
            results.append(result)
            bar.update()
    bar.close()
    return results


def summarize(results: Sequence[Transcription]) -> dict:
    """Files, audio hours, real-time factor (wall time over audio time) and unreadable files."""
    audio = sum(result.audio_seconds for result in results)
    seconds = sum(result.seconds for result in results)
    failed = [{"path": r.path, "error": r.error} for r in results if r.error is not None]
    return {
        "files": len(results),
        "transcribed": len(results) - len(failed),
        "audio_hours": round(audio / 3600, 4),
        "seconds": round(seconds, 3),
        "real_time_factor": round(seconds / max(audio, 1e-9), 5),
        "unreadable": failed,
    }


@dataclass
class _Loaded:
    """A file that fits one window, read whole."""

    index: int
    path: str
    waveform: torch.Tensor
    seconds: float  # reading it


@dataclass
class _Long:
    """A file longer than one window: its header read, its audio streamed later."""

    index: int
    path: str
    stream: AudioStream
    seconds: float  # reading its header


def _read(
    paths: list[str | Path], max_seconds: float | None, window: int
) -> Iterator[_Loaded | _Long | Transcription]:
    """Each file whole if its header says it fits `window` samples, else its stream."""
    for index, path in enumerate(paths):
        start = time.perf_counter()
        try:
            stream = AudioStream(path, max_seconds=max_seconds)
            waveform = None if stream.samples > window else torch.from_numpy(stream.read())
        except AudioError as error:
            yield Transcription(str(path), "", 0.0, 0.0, error=error.reason)
            continue
        if waveform is None:
            yield _Long(index, str(path), stream, time.perf_counter() - start)
        else:
            yield _Loaded(index, str(path), waveform, time.perf_counter() - start)


def _transcribe_group(
    model: AsrModel | OnnxCtcModel, paths: list[str | Path], timestamps: bool,
    frame_seconds: float, batch_seconds: float, window_s: float, overlap_s: float,
    max_seconds: float | None,
) -> list[Transcription]:  # fmt: skip
    """One read-ahead group: short files batched by length, long ones streamed one by one."""
    results: list[Transcription | None] = [None] * len(paths)
    short: list[_Loaded] = []
    long: list[_Long] = []
    for index, item in enumerate(_read(paths, max_seconds, int(window_s * SAMPLE_RATE))):
        if isinstance(item, Transcription):
            results[index] = item
        else:
            (short if isinstance(item, _Loaded) else long).append(item)
    short.sort(key=lambda f: f.waveform.numel())
    for batch in _batches(short, int(batch_seconds * SAMPLE_RATE)):
        start = time.perf_counter()
        log_probs = _batch_log_probs(model, [f.waveform for f in batch])
        elapsed = time.perf_counter() - start
        total = sum(f.waveform.numel() for f in batch)
        for item, probs in zip(batch, log_probs, strict=True):
            share = elapsed * item.waveform.numel() / total
            segments = partial(speech_segments, item.waveform, SAMPLE_RATE) if timestamps else None
            audio_seconds = item.waveform.numel() / SAMPLE_RATE
            results[item.index] = _result(model, item.path, probs, share + item.seconds,
                                          audio_seconds, segments, frame_seconds)  # fmt: skip
    for item in long:
        results[item.index] = _transcribe_long(model, item, timestamps, frame_seconds,
                                               batch_seconds, window_s, overlap_s)  # fmt: skip
    return [result for result in results if result is not None]


class _Tally:
    """What a streamed file's transcription needs besides its log-probs: its length, and with
    timestamps its 10 ms frame energies (100 numbers a second instead of 16,000 samples),
    kept in one buffer sized from the `expected_samples` the header promises."""

    def __init__(self, energies: bool, expected_samples: int = 0) -> None:
        self.samples = 0
        self.hop = round(SPEECH_FRAME_S * SAMPLE_RATE)
        expected = min(expected_samples, PREALLOCATE_SAMPLES)
        self.energies = _Rows(expected // self.hop) if energies else None
        self.carry = np.zeros(0, np.float32)  # samples short of a whole energy frame

    def count(self, pieces: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The pieces (n_i,), passed through as they are counted."""
        for piece in pieces:
            self.samples += piece.size
            if self.energies is not None:
                # Whole frames from the file's first sample, as `speech_segments` frames it.
                samples = np.concatenate([self.carry, piece])
                whole = samples.size // self.hop * self.hop
                self.energies.append(frame_energies(torch.from_numpy(samples[:whole]), SAMPLE_RATE))
                self.carry = samples[whole:]
            yield piece

    def segments(self) -> list[tuple[float, float]]:
        """The file's speech segments, as `speech_segments` of its whole waveform gives them."""
        if self.energies is None or not self.energies.size:
            return []
        return segments_from_energies(self.energies.rows())


def _transcribe_long(
    model: AsrModel | OnnxCtcModel, item: _Long, timestamps: bool, frame_seconds: float,
    batch_seconds: float, window_s: float, overlap_s: float,
) -> Transcription:  # fmt: skip
    """A file longer than one window, decoded, windowed and run a batch at a time; a problem
    found partway (a decode error, NaN, a short read) makes it an error result."""
    start = time.perf_counter()
    expected = item.stream.samples
    tally = _Tally(timestamps, expected)
    try:
        probs = _stream_log_probs(model, tally.count(item.stream), window_s, overlap_s,
                                  batch_seconds, expected)  # fmt: skip
    except AudioError as error:
        return Transcription(item.path, "", 0.0, 0.0, error=error.reason)
    seconds = item.seconds + time.perf_counter() - start
    return _result(model, item.path, probs, seconds, tally.samples / SAMPLE_RATE,
                   tally.segments if timestamps else None, frame_seconds)  # fmt: skip


def _batches(files: list[_Loaded], max_samples: int) -> Iterator[list[_Loaded]]:
    """Consecutive files (sorted by length) up to `max_samples` of audio each; at least one."""
    batch: list[_Loaded] = []
    samples = 0
    for item in files:
        if batch and samples + item.waveform.numel() > max_samples:
            yield batch
            batch, samples = [], 0
        batch.append(item)
        samples += item.waveform.numel()
    if batch:
        yield batch


@torch.no_grad()
def _batch_log_probs(model: AsrModel | OnnxCtcModel, waveforms: list[torch.Tensor]) -> list:
    """Each waveform's log-probs (T'_i, V + 1), from one padded forward pass."""
    device = model.device
    lengths = torch.tensor([w.numel() for w in waveforms], device=device)
    batch = torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True).to(device)  # (B, N)
    out = model.log_probs(batch, lengths)
    return [probs[: int(length)] for probs, length in zip(out.log_probs, out.lengths, strict=True)]


def _result(
    model: AsrModel | OnnxCtcModel, path: str, log_probs: torch.Tensor, seconds: float,
    audio_seconds: float, segments: Callable[[], list[tuple[float, float]]] | None,
    frame_seconds: float,
) -> Transcription:  # fmt: skip
    """Decode one file's log-probs (T', V + 1); with `segments` (the file's speech segments,
    computed on demand) also its words and tokens, words snapped onto the speech."""
    start = time.perf_counter()
    lengths = torch.tensor([log_probs.size(0)])
    ids = greedy_decode(log_probs.unsqueeze(0), lengths)[0]
    text = model.tokenizer.decode(ids)
    words, tokens = [], []
    if segments is not None:
        log_probs = log_probs.cpu()
        words, tokens = ctc_timings(log_probs, model.tokenizer, frame_seconds)
        words = snap_to_speech(words, segments())
    seconds += time.perf_counter() - start
    return Transcription(path, text, audio_seconds, seconds, words, tokens)
