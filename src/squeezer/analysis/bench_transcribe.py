"""Transcription benchmark: word-time accuracy on known word times, batched against one by one.

    squeezer bench-transcribe results/demo/runs/squeezeformer/model \\
        --manifest data/synth-demo/test.jsonl.gz --out docs/benchmarks.md

- Word edges: single words spoken by several espeak-ng voices joined by pauses
  (`squeezer.data.joined_words`), transcribed with timestamps; over the words recognised (the
  decoded words aligned to the spoken ones), the median and 90th percentile of |predicted -
  true| start and end, for squeezer's snapped times and for the CTC token spans alone.
- Throughput: the manifest's files transcribed one at a time and batched by length
  (`--batch-seconds`), in alternating rounds in one process; median real-time factor, spread.
"""

from __future__ import annotations

import difflib
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from squeezer.audio import SAMPLE_RATE, audio_duration, load_audio
from squeezer.data.joined_words import SpokenFile, joined_words
from squeezer.data.tts import Voice
from squeezer.model import AsrModel
from squeezer.timestamps import Timing, word_timings
from squeezer.transcribe import frame_samples, stitched_log_probs, transcribe

__all__ = ["BoundaryErrors", "boundary_errors", "format_markdown", "throughput"]

VOICE_NAMES = [("en-us", "m1"), ("en-gb", "f2"), ("en-us", "m5"), ("en-gb-scotland", "f4")]
VOICES = tuple(Voice("espeak-ng", accent, variant) for accent, variant in VOICE_NAMES)


@dataclass(frozen=True)
class BoundaryErrors:
    """Word edge errors in ms over the recognised words: median and 90th percentile."""

    method: str
    words: int
    recognised: int
    median_ms: float
    p90_ms: float


def _matched(predicted: list[Timing], truth: SpokenFile) -> list[tuple[Timing, tuple]]:
    matcher = difflib.SequenceMatcher(a=[w.text for w in predicted],
                                      b=[w for w, _, _ in truth.words], autojunk=False)  # fmt: skip
    return [(predicted[i + k], truth.words[j + k])
            for i, j, n in matcher.get_matching_blocks() for k in range(n)]  # fmt: skip


def boundary_errors(model: AsrModel, count_per_voice: int = 16) -> list[BoundaryErrors]:
    """Snapped and CTC-only word edge errors on joined single words of `VOICES`."""
    frame_seconds = frame_samples(model) / SAMPLE_RATE
    errors: dict[str, list[float]] = {"squeezer (snapped to speech)": [], "CTC token spans": []}
    words = recognised = 0
    with tempfile.TemporaryDirectory() as scratch:
        for index, voice in enumerate(VOICES):
            spoken = joined_words(Path(scratch) / str(index), count_per_voice, voice, seed=index)
            results = transcribe(model, [s.path for s in spoken], timestamps=True)
            for result, truth in zip(results, spoken, strict=True):
                waveform = torch.from_numpy(load_audio(truth.path))
                log_probs = stitched_log_probs(model, waveform)
                ctc = word_timings(log_probs, model.tokenizer, frame_seconds)
                words += len(truth.words)
                for method, predicted in zip(errors, (result.words, ctc), strict=True):
                    pairs = _matched(predicted, truth)
                    if method.startswith("squeezer"):
                        recognised += len(pairs)
                    for word, (_, start, end) in pairs:
                        errors[method] += [abs(word.start - start), abs(word.end - end)]
    return [
        BoundaryErrors(method, words, recognised, 1000 * float(np.median(values)),
                       1000 * float(np.percentile(values, 90)))
        for method, values in errors.items() if values
    ]  # fmt: skip


def throughput(
    model: AsrModel, paths: list[Path], rounds: int, batch_seconds: float
) -> dict[str, list[float]]:
    """Real-time factors of one-file-at-a-time and batched transcription, alternating."""
    audio = sum(audio_duration(path) for path in paths)  # from the headers
    modes = {"one file at a time": 1e-9, f"batched ({batch_seconds:g} s a batch)": batch_seconds}
    factors: dict[str, list[float]] = {mode: [] for mode in modes}
    transcribe(model, paths[:4], batch_seconds=batch_seconds)  # warm-up
    for _ in range(rounds):
        for mode, seconds in modes.items():
            start = time.perf_counter()
            transcribe(model, paths, batch_seconds=seconds)
            factors[mode].append((time.perf_counter() - start) / audio)
    return factors


def format_markdown(
    name: str, errors: list[BoundaryErrors], factors: dict[str, list[float]], command: str,
    rounds: int, threads: int,
) -> str:  # fmt: skip
    """The transcription section of docs/benchmarks.md."""
    lines = [
        "## Transcription: word times and batching",
        "",
        f"`{command}`; {threads} threads, CPU. Model: {name}.",
        "",
        f"Word edges on {len(VOICES)} espeak-ng voices x 16 files of single words joined by "
        "0.2-0.6 s pauses (known times), over the words recognised:",
        "",
        "| word times | words recognised | median error (ms) | 90th percentile (ms) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {e.method} | {e.recognised} of {e.words} | {e.median_ms:.0f} | {e.p90_ms:.0f} |"
              for e in errors]  # fmt: skip
    if factors:
        base = statistics.median(next(iter(factors.values())))
        lines += [
            "",
            f"The test split, {rounds} alternating rounds; median real-time factor [min, max]:",
            "",
            "| mode | real-time factor | [min, max] | speed-up |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {mode} | {statistics.median(v):.4f} | [{min(v):.4f}, {max(v):.4f}] | "
            f"{base / statistics.median(v):.2f}x |"
            for mode, v in factors.items()
        ]
    return "\n".join(lines) + "\n"
