"""Offline speech engines for the synthetic corpus: list their English voices, speak one line.

espeak-ng (required) and flite (optional) are Debian packages run as subprocesses. Output is
converted to 16 kHz mono 16-bit FLAC with soundfile + soxr; nothing is trimmed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "ESPEAK",
    "FLITE",
    "SAMPLE_RATE",
    "SynthesisError",
    "Voice",
    "espeak_voices",
    "flite_voices",
    "require_espeak",
    "synthesize",
    "tool_versions",
]

ESPEAK = "espeak-ng"
FLITE = "flite"
SAMPLE_RATE = 16_000  # Hz, the corpus rate
ESPEAK_DEFAULT_RATE = 175  # words per minute; flite's duration_stretch is relative to it
TIMEOUT_S = 60.0  # one sentence takes well under a second; a hung engine must not hang a build
Engine = Literal["espeak-ng", "flite"]

# Classic espeak-ng variants (male 1-8, female 1-5): human-like, unlike "whisper" or "robosoft".
ESPEAK_VARIANTS = tuple(f"m{i}" for i in range(1, 9)) + tuple(f"f{i}" for i in range(1, 6))
# flite voices and their accents. kal (8 kHz) duplicates kal16, and awb_time only speaks clock
# times, so neither is used.
FLITE_ACCENTS = {"awb": "en-gb-scotland", "kal16": "en-us", "rms": "en-us", "slt": "en-us"}


class SynthesisError(RuntimeError):
    """An engine failed to speak one sentence."""


@dataclass(frozen=True, order=True)
class Voice:
    """One speaker identity: engine + accent + variant (e.g. espeak-ng, en-gb-scotland, m3)."""

    engine: Engine
    accent: str
    variant: str

    @property
    def id(self) -> str:
        """The speaker id stored in manifests."""
        return f"{self.engine}_{self.accent}_{self.variant}"

    @property
    def name(self) -> str:
        """The engine's own name for the voice (its `-v` / `-voice` argument)."""
        return f"{self.accent}+{self.variant}" if self.engine == ESPEAK else self.variant


def require_espeak() -> str:
    """The path of espeak-ng; a one-line RuntimeError saying how to install it if missing."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise RuntimeError(
            f"{ESPEAK} not found on PATH: run `make system-deps` (or `apt-get install espeak-ng`)"
        )
    return path


def espeak_voices() -> list[Voice]:
    """espeak-ng's built-in English accents x the classic variants that are installed, sorted.

    MBROLA voices (`mb/...`) are skipped: they need the separate mbrola package.
    """
    accents = set()
    for line in _run_text([ESPEAK, "--voices=en"]).splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("gmw/") and fields[1].startswith("en"):
            accents.add(fields[1])
    installed = set()
    for line in _run_text([ESPEAK, "--voices=variant"]).splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            installed.add(fields[4].removeprefix("!v/"))
    variants = [variant for variant in ESPEAK_VARIANTS if variant in installed]
    return sorted(Voice(ESPEAK, accent, variant) for accent in accents for variant in variants)


def flite_voices() -> list[Voice]:
    """flite's usable English voices (see FLITE_ACCENTS), sorted; [] if flite is not installed."""
    if shutil.which(FLITE) is None:
        return []
    listed = _run_text([FLITE, "-lv"]).removeprefix("Voices available:").split()
    return sorted(
        Voice(FLITE, FLITE_ACCENTS[name], name) for name in listed if name in FLITE_ACCENTS
    )


def tool_versions() -> dict[str, str]:
    """One version line per installed engine, e.g. {"espeak-ng": "eSpeak NG ...: 1.51"}."""
    versions = {ESPEAK: _run_text([ESPEAK, "--version"]).split("Data at")[0].strip()}
    if shutil.which(FLITE) is not None:
        lines = _run_text([FLITE, "--version"], check=False).splitlines()  # flite exits 1 here
        found = (line.split("version:", 1)[1] for line in lines if "version:" in line)
        versions[FLITE] = next(found, "unknown").strip()
    return versions


def synthesize(voice: Voice, text: str, rate: int, pitch: int | None, path: Path) -> int:
    """Speak `text` with `voice` into `path` as 16 kHz mono FLAC; the number of samples.

    Args:
        rate: speaking rate in words per minute (espeak-ng `-s`; flite via duration_stretch).
        pitch: espeak-ng `-p` (0-99); None for flite, which keeps its voice's own pitch.

    Returns:
        The number of samples written, or 0 (nothing written) if the engine produced silence.

    Raises:
        SynthesisError: the engine failed or its output was unreadable.
    """
    try:
        if voice.engine == ESPEAK:
            audio, rate_hz = _speak_espeak(voice, text, rate, pitch)
        else:
            audio, rate_hz = _speak_flite(voice, text, rate)
    except (OSError, subprocess.SubprocessError, RuntimeError) as error:
        raise SynthesisError(f"{voice.id}: {text!r}: {error}") from error
    mono = audio.mean(axis=1)
    if mono.size == 0 or not np.any(mono):
        return 0
    if rate_hz != SAMPLE_RATE:
        mono = soxr.resample(mono, rate_hz, SAMPLE_RATE)
    # Resampling can overshoot full scale a little; clip rather than wrap around in PCM_16.
    sf.write(path, np.clip(mono, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return len(mono)


def _speak_espeak(voice: Voice, text: str, rate: int, pitch: int | None) -> tuple[np.ndarray, int]:
    """(samples (N, C) float32, sample rate) from espeak-ng's WAV on stdout; text on stdin."""
    command = [ESPEAK, "-v", voice.name, "-s", str(rate), "--stdout"]
    if pitch is not None:
        command += ["-p", str(pitch)]
    result = subprocess.run(
        command, input=text.encode(), capture_output=True, timeout=TIMEOUT_S, check=True
    )
    return sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)


def _speak_flite(voice: Voice, text: str, rate: int) -> tuple[np.ndarray, int]:
    """(samples (N, C) float32, sample rate) from flite, which writes only to a file."""
    stretch = ESPEAK_DEFAULT_RATE / rate  # >1 is slower, like a lower words-per-minute rate
    with tempfile.TemporaryDirectory(prefix="squeezer-flite-") as folder:
        wav = Path(folder) / "speech.wav"
        command = [FLITE, "-voice", voice.variant, "--setf", f"duration_stretch={stretch:.4f}"]
        command += ["-t", text, "-o", str(wav)]
        subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=True)
        return sf.read(wav, dtype="float32", always_2d=True)


def _run_text(command: list[str], check: bool = True) -> str:
    """The stdout of a quick listing command, as text."""
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_S, check=check
    ).stdout
