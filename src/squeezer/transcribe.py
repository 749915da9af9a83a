"""Transcribe audio files: batched by length, long files in overlapping windows, with times.

    results = transcribe(model, paths, timestamps=True)   # AsrModel or OnnxCtcModel

Files that fit one window are read a group at a time, sorted by length and batched up to
`batch_seconds` of audio per forward pass (the padding-invariant model gives each file exactly
what it gets alone). A file longer than one window is cut into windows of `window_s` seconds
that overlap by `overlap_s`; each window's log-probabilities keep only the frames away from its
edges (where the encoder saw little context), the kept frames tile the whole file exactly once,
and the stitched sequence is decoded as one utterance, so no word is cut or repeated at a window
boundary and word times stay exact. A file that cannot be read gets a result with its error
and an empty text; the others are still transcribed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from squeezer.audio import SAMPLE_RATE, AudioError, load_audio
from squeezer.decoding import greedy_decode
from squeezer.timestamps import Timing, ctc_timings, snap_to_speech, speech_segments

if TYPE_CHECKING:
    from squeezer.model import AsrModel
    from squeezer.onnx_model import OnnxCtcModel

__all__ = ["Transcription", "frame_samples", "stitched_log_probs", "summarize", "transcribe"]

READ_AHEAD = 64  # files read, sorted and batched at a time: bounds memory on any folder size


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


@torch.no_grad()
def stitched_log_probs(
    model: AsrModel | OnnxCtcModel,
    waveform: torch.Tensor,
    window_s: float = 20.0,
    overlap_s: float = 2.0,
) -> torch.Tensor:
    """waveform (N,) -> log-probs (T', V + 1) of the whole file, computed window by window."""
    frame = frame_samples(model)
    window_frames = int(window_s * SAMPLE_RATE) // frame
    margin = int(overlap_s * SAMPLE_RATE) // frame // 2
    if window_frames <= 2 * margin:
        raise ValueError(f"window_s={window_s} must exceed overlap_s={overlap_s}")
    window, hop = window_frames * frame, (window_frames - 2 * margin) * frame
    device = model.device
    if waveform.numel() <= window:
        lengths = torch.tensor([waveform.numel()], device=device)
        out = model.log_probs(waveform.to(device).unsqueeze(0), lengths)
        return out.log_probs[0, : int(out.lengths[0])]
    starts = list(range(0, waveform.numel() - window + hop, hop))
    chunks = [waveform[s : s + window] for s in starts]
    lengths = torch.tensor([c.numel() for c in chunks], device=device)
    batch = torch.nn.utils.rnn.pad_sequence(chunks, batch_first=True).to(device)  # (W, window)
    out = model.log_probs(batch, lengths)
    pieces = []
    for index, (log_probs, length) in enumerate(zip(out.log_probs, out.lengths, strict=True)):
        first = 0 if index == 0 else margin
        last = int(length) if index == len(chunks) - 1 else window_frames - margin
        pieces.append(log_probs[first:last])
    return torch.cat(pieces)  # (T', V + 1)


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
        batch_seconds: audio per forward pass for files that fit one window.
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
    index: int
    path: str
    waveform: torch.Tensor
    seconds: float  # reading it


def _read(paths: list[str | Path], max_seconds: float | None) -> Iterator[_Loaded | Transcription]:
    for index, path in enumerate(paths):
        start = time.perf_counter()
        try:
            waveform = torch.from_numpy(load_audio(path, max_seconds=max_seconds))
        except AudioError as error:
            yield Transcription(str(path), "", 0.0, 0.0, error=error.reason)
            continue
        yield _Loaded(index, str(path), waveform, time.perf_counter() - start)


def _transcribe_group(
    model: AsrModel | OnnxCtcModel, paths: list[str | Path], timestamps: bool,
    frame_seconds: float, batch_seconds: float, window_s: float, overlap_s: float,
    max_seconds: float | None,
) -> list[Transcription]:  # fmt: skip
    """One read-ahead group: short files batched by length, long ones window by window."""
    results: list[Transcription | None] = [None] * len(paths)
    loaded = []
    for index, item in enumerate(_read(paths, max_seconds)):
        if isinstance(item, Transcription):
            results[index] = item
        else:
            loaded.append(item)
    window = int(window_s * SAMPLE_RATE)
    short = sorted((f for f in loaded if f.waveform.numel() <= window),
                   key=lambda f: f.waveform.numel())  # fmt: skip
    for batch in _batches(short, int(batch_seconds * SAMPLE_RATE)):
        start = time.perf_counter()
        log_probs = _batch_log_probs(model, [f.waveform for f in batch])
        elapsed = time.perf_counter() - start
        total = sum(f.waveform.numel() for f in batch)
        for item, probs in zip(batch, log_probs, strict=True):
            share = elapsed * item.waveform.numel() / total
            results[item.index] = _result(model, item, probs, share, timestamps, frame_seconds)
    for item in (f for f in loaded if f.waveform.numel() > window):
        start = time.perf_counter()
        probs = stitched_log_probs(model, item.waveform, window_s, overlap_s)
        elapsed = time.perf_counter() - start
        results[item.index] = _result(model, item, probs, elapsed, timestamps, frame_seconds)
    return [result for result in results if result is not None]


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
    model: AsrModel | OnnxCtcModel, item: _Loaded, log_probs: torch.Tensor, seconds: float,
    timestamps: bool, frame_seconds: float,
) -> Transcription:  # fmt: skip
    start = time.perf_counter()
    lengths = torch.tensor([log_probs.size(0)])
    ids = greedy_decode(log_probs.unsqueeze(0), lengths)[0]
    text = model.tokenizer.decode(ids)
    words, tokens = [], []
    if timestamps:
        log_probs = log_probs.cpu()
        words, tokens = ctc_timings(log_probs, model.tokenizer, frame_seconds)
        words = snap_to_speech(words, speech_segments(item.waveform, SAMPLE_RATE))
    seconds += item.seconds + time.perf_counter() - start
    audio_seconds = item.waveform.numel() / SAMPLE_RATE
    return Transcription(item.path, text, audio_seconds, seconds, words, tokens)
