"""The embedded corpus: sentence filter, split plan, and real `tiny` builds with espeak-ng."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from squeezer.data import tts
from squeezer.data.corpus import synthesize_corpus
from squeezer.data.corpus_plan import PITCH_RANGE, RATE_RANGE, plan_corpus
from squeezer.data.manifests import load_cuts
from squeezer.data.sentences import (
    builtin_sentences,
    is_plain_sentence,
    normalised_words,
    read_fortunes,
    sentence_pool,
    split_sentences,
)
from squeezer.data.tts import Voice

SPLITS = ("train", "dev", "test")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
has_flite = shutil.which("flite") is not None


def supervisions(folder: Path, split: str) -> list:
    return [cut.supervisions[0] for cut in load_cuts(folder / f"{split}.jsonl.gz")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    synthesize_corpus(folder, "tiny", seed=0)
    return folder


def fake_synthesize(voice: Voice, text: str, rate: int, pitch: int | None, path: Path) -> int:
    """A stand-in engine: 0.2 s of tone, so that build logic is tested in milliseconds."""
    sf.write(path, 0.1 * np.sin(np.arange(3200) * 0.1), tts.SAMPLE_RATE, format="FLAC")
    return 3200


# --- sentences ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Bank error in your favor, collect your winnings.",
        "You're almost as happy as you think you are!",
        "Is the long-forgotten key under the mat?",
    ],
)
def test_plain_sentences_pass(text):
    assert is_plain_sentence(text)


@pytest.mark.parametrize(
    "text",
    [
        "Collect $200 on the way.",  # symbol and digits
        "Call me at 5 tomorrow.",  # digit
        "He said (quietly) hello.",  # odd symbols
        "Go home.",  # too short
        " ".join(["word"] * 21) + ".",  # too long
        "Ask the NASA engineers today.",  # an acronym is spelled out
        "What's Dr. Presume's full name?",  # an abbreviation is read differently
        "And then... nothing happened.",  # ellipsis
        "no end mark here at all",
    ],
)
def test_odd_sentences_are_rejected(text):
    assert not is_plain_sentence(text)


def test_split_sentences_keeps_abbreviations_whole():
    text = "Ask Dr. Watson now.  Go home!\nIt is late."
    assert split_sentences(text) == ["Ask Dr. Watson now.", "Go home!", "It is late."]


def test_read_fortunes_parses_entries(tmp_path):
    (tmp_path / "jokes").write_text(
        "Avoid reality at all costs.\n%\nA banker lends you his umbrella\nwhen the sun shines.\n"
        "\t\t-- Mark Twain\n%\nQ:\tWhy did the chicken cross the road?\n%\n"
        "A _\b_\bvery lucky week ahead.\n%\nCollect 200 dollars now.\n%\nWho's there?\n"
    )
    (tmp_path / "jokes.dat").write_bytes(b"\x00\x01 not text")
    assert read_fortunes(tmp_path) == [
        "A banker lends you his umbrella when the sun shines.",
        "A very lucky week ahead.",
        "Avoid reality at all costs.",
        "Why did the chicken cross the road?",
    ]
    assert read_fortunes(tmp_path / "missing") == []


def test_builtin_sentences_are_plain_and_fixed():
    sentences = builtin_sentences(300)
    assert len(set(sentences)) == 300
    assert all(is_plain_sentence(sentence) for sentence in sentences)
    assert builtin_sentences(300) == sentences


def test_sentence_pool_merges_sources_ignoring_case_and_punctuation():
    pool = sentence_pool(["Go to the shop now.", "Rest well."], ["go to the shop now!"])
    assert pool == ["Go to the shop now.", "Rest well."]


# --- plan (no engine needed) -------------------------------------------------------------------


def fake_voices() -> list[Voice]:
    accents = ["en-a", "en-b", "en-c", "en-d"]
    variants = [f"m{i}" for i in range(1, 8)] + [f"f{i}" for i in range(1, 6)]
    espeak = [Voice("espeak-ng", accent, variant) for accent in accents for variant in variants]
    return [*espeak, Voice("flite", "en-us", "slt"), Voice("flite", "en-us", "rms")]


def test_demo_plan_is_disjoint_and_sized():
    plan = plan_corpus("demo", 0, fake_voices(), builtin_sentences(1500))
    by_split = {split: [u for u in plan if u.split == split] for split in SPLITS}
    assert {split: len(rows) for split, rows in by_split.items()} == {
        "train": 2550,
        "dev": 150,
        "test": 300,
    }
    for field in ("voice", "text"):
        seen = [{getattr(u, field) for u in by_split[split]} for split in SPLITS]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2]), field
    assert {u.voice.engine for u in by_split["train"]} == {"espeak-ng"}
    assert all(RATE_RANGE[0] <= u.rate <= RATE_RANGE[1] for u in plan)
    assert all(u.pitch is None or PITCH_RANGE[0] <= u.pitch <= PITCH_RANGE[1] for u in plan)


def test_plan_depends_on_seed_only():
    voices, sentences = fake_voices(), builtin_sentences(500)
    first = plan_corpus("tiny", 0, voices, sentences)
    assert plan_corpus("tiny", 0, voices[::-1], sentences[::-1]) == first
    assert plan_corpus("tiny", 1, voices, sentences) != first


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="huge"):
        synthesize_corpus(tmp_path, "huge")  # type: ignore[arg-type]


def test_missing_espeak_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match="make system-deps") as error:
        synthesize_corpus(tmp_path / "corpus", "tiny")
    assert "\n" not in str(error.value)


# --- real tiny builds --------------------------------------------------------------------------


@needs_espeak
def test_tiny_manifests_and_audio(tiny):
    counts = {}
    for split in SPLITS:
        cuts = load_cuts(tiny / f"{split}.jsonl.gz")
        counts[split] = len(cuts)
        for cut in cuts:
            source = Path(cut.recording.sources[0].source)
            assert source == tiny / "audio" / split / f"{cut.id}.flac"
            info = sf.info(source)
            assert (info.samplerate, info.channels) == (16000, 1)
            assert info.frames == cut.recording.num_samples
            assert cut.duration == pytest.approx(info.frames / 16000)
            assert cut.load_audio().shape == (1, info.frames)
            supervision = cut.supervisions[0]
            assert supervision.language == "en" and supervision.text
            assert set(supervision.custom) >= {"engine", "voice", "rate", "pitch"}
    assert counts == {"train": 85, "dev": 5, "test": 10}


@needs_espeak
def test_tiny_splits_are_disjoint_and_test_is_unseen(tiny):
    rows = {split: supervisions(tiny, split) for split in SPLITS}
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not {s.speaker for s in rows[a]} & {s.speaker for s in rows[b]}
        texts = [{normalised_words(s.text) for s in rows[split]} for split in (a, b)]
        assert not texts[0] & texts[1]
    heard = {s.custom["accent"] for s in rows["train"] + rows["dev"]}
    assert {s.custom["accent"] for s in rows["test"]} - heard
    if has_flite:
        assert {s.custom["engine"] for s in rows["test"]} == {"espeak-ng", "flite"}
        assert {s.custom["engine"] for s in rows["train"] + rows["dev"]} == {"espeak-ng"}


@needs_espeak
def test_tiny_readme_and_reuse(tiny, monkeypatch):
    readme = (tiny / "README.md").read_text()
    assert "| train | 85 |" in readme and "espeak-ng" in readme and "seed: 0" in readme

    def must_not_run(*args):
        raise AssertionError("a complete corpus was rebuilt")

    monkeypatch.setattr(tts, "synthesize", must_not_run)
    summary = synthesize_corpus(tiny, "tiny", seed=0)
    assert summary.reused
    assert [row.utterances for row in summary.splits] == [85, 5, 10]
    assert summary.to_markdown() in readme


@needs_espeak
def test_tiny_build_is_deterministic(tiny, tmp_path):
    synthesize_corpus(tmp_path, "tiny", seed=0, jobs=1)
    for split in SPLITS:
        name = f"{split}.jsonl.gz"
        assert gzip.decompress((tmp_path / name).read_bytes()) == gzip.decompress(
            (tiny / name).read_bytes()
        )


# --- build logic with a stand-in engine --------------------------------------------------------


@needs_espeak
def test_failures_are_retried_then_skipped(tmp_path, monkeypatch):
    attempts: dict[str, int] = {}

    def flaky(voice, text, rate, pitch, path):
        attempts[path.stem] = attempts.get(path.stem, 0) + 1
        if path.stem == "train-000000" or (
            path.stem == "train-000001" and attempts[path.stem] == 1
        ):
            raise tts.SynthesisError("engine crashed")
        return 0 if path.stem == "train-000002" else fake_synthesize(voice, text, rate, pitch, path)

    monkeypatch.setattr(tts, "synthesize", flaky)
    summary = synthesize_corpus(tmp_path, "tiny", seed=0)
    assert (summary.failed, summary.empty) == (1, 1)
    assert attempts["train-000000"] == 2 and attempts["train-000001"] == 2
    ids = {cut.id for cut in load_cuts(tmp_path / "train.jsonl.gz")}
    assert len(ids) == 83 and "train-000001" in ids and "train-000000" not in ids


@needs_espeak
def test_incomplete_or_different_corpus_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(tts, "synthesize", fake_synthesize)
    synthesize_corpus(tmp_path, "tiny", seed=0)
    (tmp_path / "dev.jsonl.gz").unlink()  # as if interrupted while writing manifests
    assert not synthesize_corpus(tmp_path, "tiny", seed=0).reused
    assert (tmp_path / "dev.jsonl.gz").is_file()
    other = synthesize_corpus(tmp_path, "tiny", seed=3)
    assert not other.reused and other.seed == 3
    assert synthesize_corpus(tmp_path, "tiny", seed=3).reused
