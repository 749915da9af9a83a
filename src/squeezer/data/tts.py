"""Offline speech engines for the synthetic corpus: list their English voices, speak lines.

espeak-ng (required), flite and Festival (both optional) are Debian packages run as
subprocesses. Output is converted to 16 kHz mono 16-bit FLAC with soundfile + soxr; nothing is
trimmed. espeak-ng and flite start in milliseconds and speak one line per process; Festival
takes ~0.2 s to load a voice (then ~15 ms a line for a diphone voice), so `synthesize_batch`
speaks a whole batch of lines in one Festival process.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "ESPEAK",
    "FESTIVAL",
    "FLITE",
    "SAMPLE_RATE",
    "Prosody",
    "SpeechRequest",
    "SynthesisError",
    "Voice",
    "espeak_voices",
    "festival_voices",
    "flite_voices",
    "require_espeak",
    "synthesize",
    "synthesize_batch",
    "tool_versions",
]

ESPEAK = "espeak-ng"
FLITE = "flite"
FESTIVAL = "festival"
SAMPLE_RATE = 16_000  # Hz, the corpus rate
ESPEAK_DEFAULT_RATE = 175  # words per minute; flite's and Festival's rates are relative to it
TIMEOUT_S = 60.0  # one sentence takes well under a second; a hung engine must not hang a build
FESTIVAL_LINE_S = 5.0  # extra timeout per line of a Festival batch (the HTS voice: ~0.1 s)
Engine = Literal["espeak-ng", "flite", "festival"]
Audio = tuple[np.ndarray, int]  # samples (N, C) float32, sample rate in Hz

# Classic espeak-ng variants (male 1-8, female 1-5): human-like, unlike "whisper" or "robosoft".
ESPEAK_VARIANTS = tuple(f"m{i}" for i in range(1, 9)) + tuple(f"f{i}" for i in range(1, 6))
# flite voices and their accents. kal (8 kHz) duplicates kal16, and awb_time only speaks clock
# times, so neither is used.
FLITE_ACCENTS = {"awb": "en-gb-scotland", "kal16": "en-us", "rms": "en-us", "slt": "en-us"}
# Festival voices (Debian festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts).
FESTIVAL_ACCENTS = {
    "kal_diphone": "en-us",
    "ked_diphone": "en-us",
    "cmu_us_slt_arctic_hts": "en-us",
}
# The person behind voices that two engines share: flite's kal16 and Festival's kal_diphone are
# built from the same diphone recordings, both slt voices from CMU ARCTIC's slt. Other voices
# are their own person.
IDENTITIES = {"kal16": "kal", "kal_diphone": "kal", "ked_diphone": "ked"}
IDENTITIES["cmu_us_slt_arctic_hts"] = "slt"
# Voices whose F0 their engine cannot move, measured with an autocorrelation pitch estimate:
# flite's rms gives byte-identical audio under f0_shift, int_f0_target_mean and _stddev;
# Festival 2.5 passes only "-m" (model) and "-r" (speed) to the HTS engine, whose F0 comes from
# the voice's own models (median F0 170 Hz under int_lr_params, hts_f0_mean and "-fm" alike).
FIXED_F0 = frozenset({"rms", "cmu_us_slt_arctic_hts"})
_FESTIVAL_DONE = re.compile(r"^squeezer-(done|failed) (\d+)$")


class SynthesisError(RuntimeError):
    """An engine failed to speak one sentence."""


@dataclass(frozen=True, order=True)
class Voice:
    """One engine voice: engine + accent + variant (e.g. espeak-ng, en-gb-scotland, m3)."""

    engine: Engine
    accent: str
    variant: str

    @property
    def id(self) -> str:
        """The speaker id stored in manifests."""
        return f"{self.engine}_{self.accent}_{self.variant}"

    @property
    def name(self) -> str:
        """The engine's own name for the voice (its `-v` / `-voice` / `voice_...` name)."""
        return f"{self.accent}+{self.variant}" if self.engine == ESPEAK else self.variant

    @property
    def identity(self) -> str:
        """The person the voice was built from (see IDENTITIES); held out as one unit."""
        return self.id if self.engine == ESPEAK else IDENTITIES.get(self.variant, self.variant)

    @property
    def shifts_f0(self) -> bool:
        """Whether `Prosody.f0_scale` applies: flite and Festival voices but FIXED_F0."""
        return self.engine != ESPEAK and self.variant not in FIXED_F0


@dataclass(frozen=True)
class Prosody:
    """How to speak a line: a rate for every engine and each engine's own pitch control.

    Attributes:
        rate: words per minute: espeak-ng `-s`; flite and Festival stretch their durations by
            ESPEAK_DEFAULT_RATE / rate (flite duration_stretch, Festival Duration_Stretch on
            top of the voice's own, or the HTS engine's speed "-r").
        pitch: espeak-ng `-p` (0-99); espeak-ng only.
        f0_scale: factor on the voice's F0 (flite f0_shift; Festival diphone voices scale the
            target_f0_mean and target_f0_std of int_lr_params); only where `Voice.shifts_f0`.
    """

    rate: int
    pitch: int | None = None
    f0_scale: float | None = None

    def check(self, voice: Voice) -> None:
        """Raise ValueError if a setting does not apply to `voice` or is out of range."""
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.pitch is not None and (voice.engine != ESPEAK or not 0 <= self.pitch <= 99):
            raise ValueError(f"pitch {self.pitch} needs an espeak-ng voice and 0-99: {voice.id}")
        if self.f0_scale is not None and (not voice.shifts_f0 or self.f0_scale <= 0):
            raise ValueError(f"f0_scale {self.f0_scale} does not apply to {voice.id}")


@dataclass(frozen=True)
class SpeechRequest:
    """One line to speak into `path` (16 kHz mono FLAC)."""

    text: str
    prosody: Prosody
    path: Path


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


def festival_voices() -> list[Voice]:
    """Festival's installed voices of FESTIVAL_ACCENTS, sorted; [] if festival is missing."""
    if shutil.which(FESTIVAL) is None:
        return []
    listed = _run_text([FESTIVAL, "--pipe"], stdin="(print (voice.list))").strip("()\n ").split()
    return sorted(
        Voice(FESTIVAL, FESTIVAL_ACCENTS[name], name) for name in listed if name in FESTIVAL_ACCENTS
    )


def tool_versions() -> dict[str, str]:
    """One version line per installed engine, e.g. {"espeak-ng": "eSpeak NG ...: 1.51"}."""
    versions = {ESPEAK: _run_text([ESPEAK, "--version"]).split("Data at")[0].strip()}
    if shutil.which(FLITE) is not None:
        lines = _run_text([FLITE, "--version"], check=False).splitlines()  # flite exits 1 here
        found = (line.split("version:", 1)[1] for line in lines if "version:" in line)
        versions[FLITE] = next(found, "unknown").strip()
    if shutil.which(FESTIVAL) is not None:
        # "festival: Festival Speech Synthesis System: 2.5.0:release December 2017"
        line = _run_text([FESTIVAL, "--version"], check=False).strip()
        versions[FESTIVAL] = line.removeprefix("festival:").strip() or "unknown"
    return versions


def synthesize(voice: Voice, text: str, prosody: Prosody, path: Path) -> int:
    """Speak `text` with `voice` into `path` as 16 kHz mono FLAC; the number of samples.

    Returns:
        The number of samples written, or 0 (nothing written) if the engine produced silence.

    Raises:
        ValueError: `prosody` does not apply to `voice`.
        SynthesisError: the engine failed or its output was unreadable.
    """
    result = synthesize_batch(voice, [SpeechRequest(text, prosody, path)])[0]
    if isinstance(result, SynthesisError):
        raise result
    return result


def synthesize_batch(voice: Voice, requests: Sequence[SpeechRequest]) -> list[int | SynthesisError]:
    """Speak every request with `voice` (Festival: in one process); per request, in order,
    the samples written (0: silence, nothing written) or the SynthesisError naming its text.

    Raises:
        ValueError: a request's prosody does not apply to `voice`.
    """
    for request in requests:
        request.prosody.check(voice)
    if voice.engine == FESTIVAL:
        spoken = _speak_festival(voice, requests)
    else:
        spoken = [_speak_one(voice, request) for request in requests]
    results: list[int | SynthesisError] = []
    for request, audio in zip(requests, spoken, strict=True):
        if not isinstance(audio, SynthesisError):
            try:
                results.append(_write_flac(audio, request.path))
                continue
            except (OSError, RuntimeError) as error:
                audio = _error(voice, request, error)
        results.append(audio)
    return results


def _error(voice: Voice, request: SpeechRequest, reason: object) -> SynthesisError:
    return SynthesisError(f"{voice.id}: {request.text!r}: {reason}")


def _write_flac(audio: Audio, path: Path) -> int:
    """Write `audio` as 16 kHz mono FLAC; its samples, or 0 (nothing written) if silent."""
    samples, rate_hz = audio
    mono = samples.mean(axis=1)
    if mono.size == 0 or not np.any(mono):
        return 0
    if rate_hz != SAMPLE_RATE:
        mono = soxr.resample(mono, rate_hz, SAMPLE_RATE)
    # Resampling can overshoot full scale a little; clip rather than wrap around in PCM_16.
    sf.write(path, np.clip(mono, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return len(mono)


def _speak_one(voice: Voice, request: SpeechRequest) -> Audio | SynthesisError:
    """One espeak-ng or flite process for one line."""
    try:
        if voice.engine == ESPEAK:
            return _speak_espeak(voice, request.text, request.prosody)
        return _speak_flite(voice, request.text, request.prosody)
    except (OSError, subprocess.SubprocessError, RuntimeError) as error:
        return _error(voice, request, error)


def _speak_espeak(voice: Voice, text: str, prosody: Prosody) -> Audio:
    """espeak-ng's WAV on stdout; text on stdin."""
    command = [ESPEAK, "-v", voice.name, "-s", str(prosody.rate), "--stdout"]
    if prosody.pitch is not None:
        command += ["-p", str(prosody.pitch)]
    result = subprocess.run(
        command, input=text.encode(), capture_output=True, timeout=TIMEOUT_S, check=True
    )
    return sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)


def _speak_flite(voice: Voice, text: str, prosody: Prosody) -> Audio:
    """flite, which writes only to a file."""
    stretch = ESPEAK_DEFAULT_RATE / prosody.rate  # >1 is slower, like a lower wpm rate
    with tempfile.TemporaryDirectory(prefix="squeezer-flite-") as folder:
        wav = Path(folder) / "speech.wav"
        command = [FLITE, "-voice", voice.variant, "--setf", f"duration_stretch={stretch:.4f}"]
        if prosody.f0_scale is not None:
            command += ["--setf", f"f0_shift={prosody.f0_scale:.4f}"]
        command += ["-t", text, "-o", str(wav)]
        subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=True)
        return sf.read(wav, dtype="float32", always_2d=True)


def _speak_festival(
    voice: Voice, requests: Sequence[SpeechRequest]
) -> list[Audio | SynthesisError]:
    """One Festival process for every request; a line that fails fails alone.

    Festival reads a Scheme script on stdin: load the voice, print "squeezer-ready", then one
    guarded form per line that prints "squeezer-done I" or "squeezer-failed I" to stderr
    (unbuffered, so a crash loses no marker). Audio is read only for lines marked done after
    the voice loaded; Festival's own messages before a marker explain that line's failure.
    """
    spoken: list[Audio | SynthesisError] = []
    # Festival crashes (SIGSEGV) on a line with nothing to say, such as "..." or "(".
    speakable = [any(char.isalnum() for char in r.text) for r in requests]
    with tempfile.TemporaryDirectory(prefix="squeezer-festival-") as folder:
        wavs = [Path(folder) / f"{index}.wav" for index in range(len(requests))]
        lines = [
            _festival_line(voice, index, request, wavs[index])
            for index, request in enumerate(requests)
            if speakable[index]
        ]
        try:
            run = subprocess.run(
                [FESTIVAL, "--pipe"],
                input="\n".join([_festival_prelude(voice), *lines]) + "\n",
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S + FESTIVAL_LINE_S * len(lines),
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as error:
            return [_error(voice, request, error) for request in requests]
        outcomes, ready = _festival_outcomes(run.stderr)
        for index, request in enumerate(requests):
            if not speakable[index]:
                spoken.append((np.zeros((0, 1), np.float32), SAMPLE_RATE))
            elif not ready:
                reason = f"festival could not load the voice: {_tail(run.stderr)}"
                spoken.append(_error(voice, request, reason))
            elif index not in outcomes:
                reason = f"festival exited ({run.returncode}) before this line: {_tail(run.stderr)}"
                spoken.append(_error(voice, request, reason))
            elif outcomes[index] is not None:
                spoken.append(_error(voice, request, f"festival: {outcomes[index]}"))
            else:
                try:
                    spoken.append(sf.read(wavs[index], dtype="float32", always_2d=True))
                except (OSError, RuntimeError) as error:
                    spoken.append(_error(voice, request, error))
    return spoken


def _festival_prelude(voice: Voice) -> str:
    """Load the voice and keep its own duration stretch, intonation and HTS settings, which
    every line scales; stop Festival if the voice does not load."""
    hts = " (set! squeezer_hts hts_engine_params)" if _is_hts(voice) else ""
    return (
        f"(unwind-protect (begin (voice_{voice.name})"
        " (set! squeezer_stretch (Parameter.get 'Duration_Stretch))"
        f" (set! squeezer_lr int_lr_params){hts}"
        ' (format stderr "squeezer-ready\\n"))'
        " (quit))\n"
        "(define (squeezer_f0 name scale) (list name (* scale (cadr (assoc name squeezer_lr)))))"
    )


def _festival_line(voice: Voice, index: int, request: SpeechRequest, wav: Path) -> str:
    """The guarded Scheme form that speaks one request into `wav` and prints its marker."""
    speed = request.prosody.rate / ESPEAK_DEFAULT_RATE
    if _is_hts(voice):  # the HTS engine ignores Duration_Stretch
        settings = f'(set! hts_engine_params (cons (list "-r" {speed:.4f}) squeezer_hts))'
    else:
        settings = f"(Parameter.set 'Duration_Stretch (* squeezer_stretch {1 / speed:.4f}))"
    scale = request.prosody.f0_scale
    if scale is not None:
        settings += (
            f" (set! int_lr_params (append (list (squeezer_f0 'target_f0_mean {scale:.4f})"
            f" (squeezer_f0 'target_f0_std {scale:.4f})) squeezer_lr))"
        )
    speak = (
        f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(request.text)}))"
        f" {_scheme_string(str(wav))} 'riff)"
    )
    return (
        f'(unwind-protect (begin {settings} {speak} (format stderr "squeezer-done {index}\\n"))'
        f' (format stderr "squeezer-failed {index}\\n"))'
    )


def _is_hts(voice: Voice) -> bool:
    """Whether a Festival voice synthesises with the HTS engine (its name says so)."""
    return voice.variant.endswith("_hts")


def _scheme_string(text: str) -> str:
    """`text` as a Scheme string literal: backslashes and quotes escaped, one line."""
    flat = " ".join(text.split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_outcomes(stderr: str) -> tuple[dict[int, str | None], bool]:
    """Per marked line: None if done, else Festival's messages since the previous marker;
    and whether the voice loaded."""
    outcomes: dict[int, str | None] = {}
    ready, messages = False, []
    for line in filter(None, map(str.strip, stderr.splitlines())):
        match = _FESTIVAL_DONE.match(line)
        if line == "squeezer-ready":
            ready, messages = True, []
        elif match is None:
            messages.append(line)
        else:
            failed = match.group(1) == "failed"
            outcomes[int(match.group(2))] = (" / ".join(messages) or "error") if failed else None
            messages = []
    return outcomes, ready


def _tail(text: str, lines: int = 2) -> str:
    """The last few non-empty lines of an engine's messages, joined on one line."""
    return " / ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])


def _run_text(command: list[str], check: bool = True, stdin: str | None = None) -> str:
    """The stdout of a quick listing command, as text."""
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=check
    ).stdout
