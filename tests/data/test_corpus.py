"""The embedded corpus: sentence filter, split plan, and real `tiny` builds with every engine
installed (espeak-ng; flite and Festival where present)."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from squeezer.data import tts
from squeezer.data.corpus import synthesize_corpus
from squeezer.data.corpus_plan import (
    F0_SCALE_RANGE,
    GROUP_UNSEEN_ACCENT,
    GROUP_UNSEEN_VARIANT,
    PITCH_RANGE,
    RATE_RANGE,
    TEST_IDENTITIES,
    plan_corpus,
    unseen_voice_group,
)
from squeezer.data.manifests import load_cuts
from squeezer.data.sentences import (
    builtin_sentences,
    is_plain_sentence,
    normalised_words,
    read_fortunes,
    sentence_pool,
    split_sentences,
)
from squeezer.data.tts import SpeechRequest, Voice

SPLITS = ("train", "dev", "test")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
ENGINES = ["espeak-ng"] + [name for name in ("festival", "flite") if shutil.which(name)]


def supervisions(folder: Path, split: str) -> list:
    return [cut.supervisions[0] for cut in load_cuts(folder / f"{split}.jsonl.gz")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    synthesize_corpus(folder, "tiny", seed=0)
    return folder


def fake_synthesize_batch(voice: Voice, requests: list[SpeechRequest]) -> list[int]:
    """A stand-in engine: 0.2 s of tone a line, so that build logic is tested in milliseconds."""
    for request in requests:
        tone = 0.1 * np.sin(np.arange(3200) * 0.1)
        sf.write(request.path, tone, tts.SAMPLE_RATE, format="FLAC")
    return [3200] * len(requests)


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


def fake_voices(engines: tuple[str, ...] = ("flite", "festival")) -> list[Voice]:
    accents = ["en-a", "en-b", "en-c", "en-d"]
    variants = [f"m{i}" for i in range(1, 8)] + [f"f{i}" for i in range(1, 6)]
    voices = [Voice("espeak-ng", accent, variant) for accent in accents for variant in variants]
    if "flite" in engines:
        voices += [Voice("flite", "en-us", name) for name in ("awb", "kal16", "rms", "slt")]
    if "festival" in engines:
        names = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
        voices += [Voice("festival", "en-us", name) for name in names]
    return voices


def by_split(plan) -> dict[str, list]:
    return {split: [u for u in plan if u.split == split] for split in SPLITS}


def test_demo_plan_is_disjoint_and_sized():
    plan = plan_corpus("demo", 0, fake_voices(), builtin_sentences(1500))
    rows = by_split(plan)
    assert {split: len(rows[split]) for split in SPLITS} == {"train": 2550, "dev": 150, "test": 300}
    people = [{u.voice.identity for u in rows[split]} for split in SPLITS]  # kal, slt: 2 engines
    texts = [{u.text for u in rows[split]} for split in SPLITS]
    for seen in (people, texts):
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    held_out = {u.voice.identity for u in rows["test"] if u.voice.engine != "espeak-ng"}
    assert held_out == set(TEST_IDENTITIES)
    assert {u.voice.variant for u in rows["test"] if u.voice.engine == "flite"} == {"rms", "slt"}


def test_every_engine_trains_an_equal_share_and_is_tested():
    rows = by_split(plan_corpus("demo", 0, fake_voices(), builtin_sentences(1500)))
    train = Counter(u.voice.engine for u in rows["train"])
    assert train == {"espeak-ng": 850, "flite": 850, "festival": 850}
    voices = Counter(u.voice for u in rows["train"] if u.voice.engine != "espeak-ng")
    assert sorted(voices.values()) == [425] * 4  # awb, kal16; kal, ked: each used evenly
    assert {u.voice.engine for u in rows["test"]} == {"espeak-ng", "flite", "festival"}
    assert {u.voice.engine for u in rows["dev"]} == {"espeak-ng"}
    assert Counter(u.group for u in rows["test"]) == {
        GROUP_UNSEEN_ACCENT: 75,
        GROUP_UNSEEN_VARIANT: 75,
        unseen_voice_group("flite"): 75,
        unseen_voice_group("festival"): 75,
    }
    assert {u.group for u in rows["dev"]} == {GROUP_UNSEEN_VARIANT}
    assert {u.group for u in rows["train"]} == {None}


def test_tiny_test_split_hears_every_group():
    rows = by_split(plan_corpus("tiny", 0, fake_voices(), builtin_sentences(500)))
    assert len(rows["test"]) == 10
    assert len({u.group for u in rows["test"][:4]}) == 4
    assert {u.voice.engine for u in rows["train"][:3]} == {"espeak-ng", "flite", "festival"}


def test_test_groups_name_what_is_unseen():
    plan = plan_corpus("demo", 3, fake_voices(), builtin_sentences(1500))
    rows = by_split(plan)
    train_accents = {u.voice.accent for u in rows["train"] if u.voice.engine == "espeak-ng"}
    train_variants = {u.voice.variant for u in rows["train"] if u.voice.engine == "espeak-ng"}
    for u in rows["test"] + rows["dev"]:
        if u.group == GROUP_UNSEEN_ACCENT:
            assert u.voice.engine == "espeak-ng" and u.voice.accent not in train_accents
        elif u.group == GROUP_UNSEEN_VARIANT:
            assert u.voice.engine == "espeak-ng" and u.voice.variant not in train_variants
        else:
            assert u.group == unseen_voice_group(u.voice.engine)
    test_variants = {u.voice.variant for u in rows["test"] if u.group == GROUP_UNSEEN_VARIANT}
    assert sorted(variant[0] for variant in test_variants) == ["f", "m"]


def test_prosody_is_drawn_per_engine():
    plan = plan_corpus("demo", 0, fake_voices(), builtin_sentences(1500))
    assert all(RATE_RANGE[0] <= u.prosody.rate <= RATE_RANGE[1] for u in plan)
    for u in plan:
        if u.voice.engine == "espeak-ng":
            assert PITCH_RANGE[0] <= u.prosody.pitch <= PITCH_RANGE[1]
            assert u.prosody.f0_scale is None
        else:
            assert u.prosody.pitch is None
            scale = u.prosody.f0_scale
            assert (scale is None) == (u.voice.variant in ("rms", "cmu_us_slt_arctic_hts"))
            assert scale is None or F0_SCALE_RANGE[0] <= scale <= F0_SCALE_RANGE[1]
    assert len({u.prosody.f0_scale for u in plan if u.voice.engine == "festival"}) > 20


def test_plan_depends_on_seed_only():
    voices, sentences = fake_voices(), builtin_sentences(500)
    first = plan_corpus("tiny", 0, voices, sentences)
    assert plan_corpus("tiny", 0, voices[::-1], sentences[::-1]) == first
    assert plan_corpus("tiny", 1, voices, sentences) != first


@pytest.mark.parametrize("engines", [(), ("flite",), ("festival",)])
def test_missing_engines_leave_a_plan_of_the_others(engines):
    rows = by_split(plan_corpus("tiny", 0, fake_voices(engines), builtin_sentences(500)))
    expected = {"espeak-ng", *engines}
    assert {u.voice.engine for u in rows["train"]} == expected
    assert {u.voice.engine for u in rows["test"]} == expected
    shares = Counter(u.voice.engine for u in rows["train"]).values()
    assert max(shares) - min(shares) <= 1


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
            assert 0.5 < cut.duration < 12.0
            assert cut.load_audio().shape == (1, info.frames)
            supervision = cut.supervisions[0]
            assert supervision.language == "en" and supervision.text
            custom = supervision.custom
            assert set(custom) >= {"engine", "accent", "voice", "identity", "rate", "pitch"}
            assert ("group" in custom) == (split != "train")
            assert (custom["pitch"] is None) == (custom["engine"] != "espeak-ng")
    assert counts == {"train": 85, "dev": 5, "test": 10}


@needs_espeak
def test_tiny_splits_are_disjoint_and_every_engine_trains_and_is_tested(tiny):
    rows = {split: supervisions(tiny, split) for split in SPLITS}
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        people = [{s.custom["identity"] for s in rows[split]} for split in (a, b)]
        assert not people[0] & people[1]
        texts = [{normalised_words(s.text) for s in rows[split]} for split in (a, b)]
        assert not texts[0] & texts[1]
    heard = {s.custom["accent"] for s in rows["train"] + rows["dev"]}
    assert {s.custom["accent"] for s in rows["test"]} - heard
    assert {s.custom["engine"] for s in rows["train"]} == set(ENGINES)
    assert {s.custom["engine"] for s in rows["test"]} == set(ENGINES)
    groups = {s.custom["group"] for s in rows["test"]}
    assert groups == {GROUP_UNSEEN_ACCENT, GROUP_UNSEEN_VARIANT} | {
        unseen_voice_group(engine) for engine in ENGINES[1:]
    }


@needs_espeak
def test_tiny_readme_and_reuse(tiny, monkeypatch):
    readme = (tiny / "README.md").read_text()
    header = "| split | utterances | " + " | ".join(sorted(ENGINES)) + " | hours |"
    assert header in readme and "seed: 0, plan version: 2" in readme
    share = 85 // len(ENGINES)  # each engine an equal share of train, espeak-ng the remainder
    train = [85 - share * (len(ENGINES) - 1)] + [share] * (len(ENGINES) - 1)
    assert "| train | 85 | " + " | ".join(map(str, train)) + " |" in readme
    assert "- test groups (utterances): espeak-ng, unseen accent: 3;" in readme

    def must_not_run(*args):
        raise AssertionError("a complete corpus was rebuilt")

    monkeypatch.setattr(tts, "synthesize_batch", must_not_run)
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
    batch_sizes = []

    def flaky(voice, requests):
        batch_sizes.append(len(requests))
        results = []
        for request in requests:
            stem = request.path.stem
            attempts[stem] = attempts.get(stem, 0) + 1
            if stem == "train-000000" or (stem == "train-000001" and attempts[stem] == 1):
                results.append(tts.SynthesisError("engine crashed"))
            else:
                results.append(0 if stem == "train-000002" else 3200)
                fake_synthesize_batch(voice, [request])
        return results

    monkeypatch.setattr(tts, "synthesize_batch", flaky)
    summary = synthesize_corpus(tmp_path, "tiny", seed=0)
    assert (summary.failed, summary.empty) == (1, 1)
    assert attempts["train-000000"] == 2 and attempts["train-000001"] == 2
    ids = {cut.id for cut in load_cuts(tmp_path / "train.jsonl.gz")}
    assert len(ids) == 83 and "train-000001" in ids and "train-000000" not in ids
    if "festival" in ENGINES:  # one batch per Festival voice of the tiny corpus
        assert max(batch_sizes) > 1


@needs_espeak
def test_incomplete_different_or_older_corpus_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(tts, "synthesize_batch", fake_synthesize_batch)
    synthesize_corpus(tmp_path, "tiny", seed=0)
    (tmp_path / "dev.jsonl.gz").unlink()  # as if interrupted while writing manifests
    assert not synthesize_corpus(tmp_path, "tiny", seed=0).reused
    assert (tmp_path / "dev.jsonl.gz").is_file()
    other = synthesize_corpus(tmp_path, "tiny", seed=3)
    assert not other.reused and other.seed == 3
    assert synthesize_corpus(tmp_path, "tiny", seed=3).reused
    readme = tmp_path / "README.md"  # a build of an earlier plan: same size and seed
    marker = "<!-- squeezer-corpus "
    text, record = readme.read_text().split(marker)
    older = json.loads(record.removesuffix(" -->\n")) | {"plan": 1}
    readme.write_text(f"{text}{marker}{json.dumps(older)} -->\n")
    assert not synthesize_corpus(tmp_path, "tiny", seed=3).reused
