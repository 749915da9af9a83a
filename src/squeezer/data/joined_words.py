"""Audio with known word times: single words spoken by espeak-ng, joined by pauses.

Each word is synthesised alone and cut to its speech (10 ms RMS within 35 dB of its loudest),
so where it sits in the joined file is known to the sample. Used to test and measure word
timestamps (tests/test_timestamps.py, tools/bench_transcribe.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from squeezer.audio import SAMPLE_RATE, load_audio
from squeezer.data.tts import Prosody, Voice, synthesize

__all__ = ["WORDS", "SpokenFile", "joined_words"]

WORDS = ("seven", "purple", "window", "garden", "quickly", "orange", "table", "mountain",
         "silver", "river", "happy", "yellow", "basket", "doctor", "finger", "monkey")  # fmt: skip
ONSET_DB = -35.0
NOISE_STD = 1e-3  # a faint floor under the pauses, as any recording has


@dataclass(frozen=True)
class SpokenFile:
    """One joined file and its words: (word, start, end) in seconds."""

    path: Path
    words: list[tuple[str, float, float]]

    @property
    def text(self) -> str:
        return " ".join(word for word, _, _ in self.words)


def _word_clip(voice: Voice, word: str, path: Path) -> np.ndarray:
    synthesize(voice, word, Prosody(rate=175, pitch=50), path)
    samples = load_audio(path)
    rms = np.sqrt(np.convolve(samples**2, np.ones(160) / 160, mode="same"))
    speech = np.nonzero(rms > rms.max() * 10 ** (ONSET_DB / 20))[0]
    return samples[speech[0] : speech[-1] + 1]


def joined_words(
    directory: Path,
    count: int = 16,
    voice: Voice | None = None,
    words: tuple[str, ...] = WORDS,
    seed: int = 0,
) -> list[SpokenFile]:
    """`count` WAV files in `directory`, each 3 to 5 distinct `words` joined by 0.2-0.6 s
    pauses after 0.3 s of lead, with each word's true start and end."""
    directory.mkdir(parents=True, exist_ok=True)
    voice = voice or Voice("espeak-ng", "en-us", "m1")
    clips = {word: _word_clip(voice, word, directory / f"word_{word}.flac") for word in words}
    rng = np.random.default_rng(seed)
    spoken = []
    for index in range(count):
        chosen = [str(word) for word in rng.choice(words, size=rng.integers(3, 6), replace=False)]
        pieces, now, times = [np.zeros(int(0.3 * SAMPLE_RATE), np.float32)], 0.3, []
        for word in chosen:
            clip = clips[word]
            times.append((word, now, now + len(clip) / SAMPLE_RATE))
            gap = int(rng.uniform(0.2, 0.6) * SAMPLE_RATE)
            pieces += [clip, np.zeros(gap, np.float32)]
            now += (len(clip) + gap) / SAMPLE_RATE
        audio = np.concatenate(pieces)
        audio += NOISE_STD * rng.standard_normal(len(audio)).astype(np.float32)
        path = directory / f"utt{index:02d}.wav"
        sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
        spoken.append(SpokenFile(path, times))
    return spoken
