"""The speech engines: Festival's batch path, prosody that really moves F0 and duration, and
engines that are missing. Skipped only where the engine's binary is missing (`make test`
installs them with `make system-deps`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from squeezer.data import tts
from squeezer.data.tts import Prosody, SpeechRequest, SynthesisError, Voice

needs_festival = pytest.mark.skipif(shutil.which("festival") is None, reason="needs festival")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite")
SENTENCE = "The quick brown fox jumps over the lazy dog, and then runs away."  # 12 words
TRICKY = 'He said "stop" (twice) \\ and then "go\\" now.'
KAL = Voice("festival", "en-us", "kal_diphone")


def median_f0(audio: np.ndarray, rate: int, low: float = 60.0, high: float = 400.0) -> float:
    """Median F0 in Hz of the voiced 40 ms frames, by autocorrelation: a frame is voiced when
    its best lag in [1/high, 1/low] s keeps half the frame's energy."""
    frame = int(0.04 * rate)
    lags = slice(int(rate / high), int(rate / low))
    f0s = []
    for start in range(0, len(audio) - frame, frame // 2):
        x = audio[start : start + frame] - audio[start : start + frame].mean()
        correlation = np.correlate(x, x, "full")[frame - 1 :]
        if correlation[0] < 1e-4:
            continue
        lag = lags.start + int(np.argmax(correlation[lags]))
        if correlation[lag] > 0.5 * correlation[0]:
            f0s.append(rate / lag)
    return float(np.median(f0s))


def speak(voice: Voice, prosody: Prosody, path: Path, text: str = SENTENCE) -> np.ndarray:
    assert tts.synthesize(voice, text, prosody, path) > 0
    audio, rate = sf.read(path, dtype="float32")
    assert rate == tts.SAMPLE_RATE and audio.ndim == 1
    return audio


def engine_voices() -> list[Voice]:
    return tts.flite_voices() + tts.festival_voices()


# --- Festival ----------------------------------------------------------------------------------


@needs_festival
def test_festival_lists_its_voices():
    voices = tts.festival_voices()
    assert voices and all(v.variant in tts.FESTIVAL_ACCENTS for v in voices)
    assert {v.identity for v in voices} <= {"kal", "ked", "slt"}
    assert tts.tool_versions()["festival"].startswith("Festival Speech Synthesis System")


@needs_festival
@pytest.mark.parametrize("voice", tts.festival_voices() or [KAL], ids=lambda v: v.variant)
def test_festival_speaks_a_sentence_of_sensible_duration(voice, tmp_path):
    audio = speak(voice, Prosody(175), tmp_path / "a.flac")
    assert 2.0 < len(audio) / tts.SAMPLE_RATE < 7.0  # 12 words at ~150-200 words a minute
    assert np.abs(audio).max() > 0.05


@needs_festival
def test_festival_batch_speaks_quotes_backslashes_and_parentheses_as_given(tmp_path):
    """The batch path passes the text to Festival intact: the same audio as text2wave reading
    it from a file (no Scheme quoting there), and the lines after it are unharmed."""
    (tmp_path / "tricky.txt").write_text(TRICKY)
    command = ["text2wave", "-eval", "(voice_kal_diphone)", str(tmp_path / "tricky.txt")]
    subprocess.run([*command, "-o", str(tmp_path / "reference.wav")], check=True)
    reference, _ = sf.read(tmp_path / "reference.wav", dtype="float32")
    texts = [TRICKY, 'Say ") (quit) (" now.', SENTENCE]
    requests = [SpeechRequest(t, Prosody(175), tmp_path / f"{i}.flac") for i, t in enumerate(texts)]
    results = tts.synthesize_batch(KAL, requests)
    assert all(isinstance(count, int) and count > 0 for count in results), results
    spoken, _ = sf.read(tmp_path / "0.flac", dtype="float32")
    np.testing.assert_array_equal(spoken, reference)
    alone = speak(KAL, Prosody(175), tmp_path / "alone.flac")
    np.testing.assert_array_equal(sf.read(tmp_path / "2.flac", dtype="float32")[0], alone)


@needs_festival
def test_festival_failing_line_fails_alone_and_says_why(tmp_path, monkeypatch):
    line = tts._festival_line

    def broken_second_line(voice, index, request, wav):
        return "(car 1)" if index == 1 else line(voice, index, request, wav)

    monkeypatch.setattr(tts, "_festival_line", broken_second_line)
    texts = ["First line here.", "Second line here.", "Third line here."]
    requests = [SpeechRequest(t, Prosody(175), tmp_path / f"{i}.flac") for i, t in enumerate(texts)]
    first, second, third = tts.synthesize_batch(KAL, requests)
    assert first > 0 and third > 0
    assert isinstance(second, SynthesisError) and not (tmp_path / "1.flac").exists()
    assert "festival_en-us_kal_diphone" in str(second) and "Second line here." in str(second)


@needs_festival
def test_festival_voice_that_does_not_load_fails_every_line(tmp_path):
    voice = Voice("festival", "en-us", "missing_diphone")
    requests = [SpeechRequest(t, Prosody(175), tmp_path / f"{t}.flac") for t in ("One.", "Two.")]
    results = tts.synthesize_batch(voice, requests)
    assert all(isinstance(r, SynthesisError) and "could not load" in str(r) for r in results)
    assert "'Two.'" in str(results[1]) and not list(tmp_path.iterdir())


@needs_festival
def test_festival_line_with_nothing_to_say_is_silent(tmp_path):
    # Festival itself would crash (SIGSEGV) on it and take the batch's other lines along.
    assert tts.synthesize(KAL, "...", Prosody(175), tmp_path / "a.flac") == 0


# --- prosody -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "voice",
    [v for v in engine_voices() if v.shifts_f0] or [pytest.param(KAL, marks=needs_festival)],
    ids=lambda v: v.id,
)
def test_f0_scale_moves_the_pitch(voice, tmp_path):
    low = median_f0(speak(voice, Prosody(175, f0_scale=0.85), tmp_path / "low.flac"), 16000)
    high = median_f0(speak(voice, Prosody(175, f0_scale=1.2), tmp_path / "high.flac"), 16000)
    assert 1.25 < high / low < 1.6  # asked for 1.2 / 0.85 = 1.41


@pytest.mark.parametrize(
    "voice", engine_voices() or [pytest.param(KAL, marks=needs_festival)], ids=lambda v: v.id
)
def test_rate_moves_the_duration(voice, tmp_path):
    slow = len(speak(voice, Prosody(130), tmp_path / "slow.flac"))
    fast = len(speak(voice, Prosody(190), tmp_path / "fast.flac"))
    assert 1.25 < slow / fast < 1.7  # asked for 190 / 130 = 1.46


def test_prosody_must_suit_the_voice():
    rms, espeak = Voice("flite", "en-us", "rms"), Voice("espeak-ng", "en-us", "m1")
    with pytest.raises(ValueError, match="f0_scale"):
        Prosody(175, f0_scale=1.1).check(rms)  # flite's rms ignores F0 settings
    with pytest.raises(ValueError, match="f0_scale"):
        Prosody(175, f0_scale=1.1).check(espeak)  # espeak-ng has -p instead
    with pytest.raises(ValueError, match="pitch"):
        Prosody(175, pitch=50).check(KAL)
    Prosody(175, pitch=50).check(espeak)
    Prosody(175, f0_scale=1.1).check(KAL)


def test_shared_people_are_one_identity():
    assert Voice("flite", "en-us", "kal16").identity == KAL.identity == "kal"
    slt = Voice("festival", "en-us", "cmu_us_slt_arctic_hts")
    assert slt.identity == Voice("flite", "en-us", "slt").identity == "slt"
    assert Voice("espeak-ng", "en-us", "m1").identity == "espeak-ng_en-us_m1"


# --- missing engines ---------------------------------------------------------------------------


def test_missing_engines_list_no_voices(tmp_path, monkeypatch):
    espeak = shutil.which("espeak-ng")
    (tmp_path / "bin").mkdir()
    if espeak is not None:
        (tmp_path / "bin" / "espeak-ng").symlink_to(espeak)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert tts.flite_voices() == [] and tts.festival_voices() == []
    if espeak is not None:
        assert set(tts.tool_versions()) == {"espeak-ng"}
    with pytest.raises(SynthesisError, match=r"festival_en-us_kal_diphone: 'Hello there\.'"):
        tts.synthesize(KAL, "Hello there.", Prosody(175), tmp_path / "a.flac")
