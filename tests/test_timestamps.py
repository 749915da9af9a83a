"""Word timestamps against known word times; subtitles; batched transcription of many files."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from squeezer.audio import SAMPLE_RATE, load_audio
from squeezer.cli import main
from squeezer.data.importers import Utterance, build_cuts
from squeezer.data.joined_words import joined_words
from squeezer.data.manifests import save_cuts
from squeezer.loading import load_model
from squeezer.timestamps import (
    Timing,
    format_srt,
    format_vtt,
    snap_to_speech,
    speech_segments,
    word_timings,
)
from squeezer.transcribe import summarize, transcribe
from squeezer.transcripts import collect_audio

FRAME_S = 0.04  # one encoder frame: 4 feature frames of 10 ms


@pytest.fixture(scope="module")
def overfitted(tmp_path_factory):
    """A tiny model trained until it knows the 16 joined utterances, and those utterances."""
    from squeezer.training import train
    from tests.training.test_loop import recipe

    directory = tmp_path_factory.mktemp("joined")
    spoken = joined_words(directory)
    utterances = [Utterance(s.path.stem, s.path, s.text) for s in spoken]
    manifest = save_cuts(build_cuts(utterances).cuts, directory / "joined.jsonl.gz")
    run = tmp_path_factory.mktemp("run")
    model_dir = train(recipe(manifest, steps=300, checkpoint_every=300), run)
    return load_model(model_dir), spoken, manifest


def _boundary_errors(results, spoken) -> tuple[np.ndarray, int]:
    """|predicted - true| of every word start and end (seconds), over the files whose words
    were all recognised; and how many files that is."""
    errors, correct = [], 0
    for result, truth in zip(results, spoken, strict=True):
        if [w.text for w in result.words] != [w for w, _, _ in truth.words]:
            continue
        correct += 1
        for word, (_, start, end) in zip(result.words, truth.words, strict=True):
            errors += [abs(word.start - start), abs(word.end - end)]
    return np.array(errors), correct


def test_word_times_within_two_encoder_frames(overfitted) -> None:
    """Measured: 16 of 16 files right, errors median 0, max 7 ms (the pauses' edges)."""
    model, spoken, _ = overfitted
    results = transcribe(model, [s.path for s in spoken], timestamps=True)
    errors, correct = _boundary_errors(results, spoken)
    print(f"\n{correct} of 16 files; word edge error median {1000 * np.median(errors):.0f} ms, "
          f"max {1000 * errors.max():.0f} ms")  # fmt: skip
    assert correct >= 12
    assert errors.max() <= 2 * FRAME_S
    for result in results:  # tokens: in order, inside their word, confidences in (0, 1]
        starts = [t.start for t in result.tokens]
        assert starts == sorted(starts) and all(0 < t.confidence <= 1 for t in result.tokens)


def test_long_files_keep_their_word_times_across_windows(overfitted, tmp_path) -> None:
    """Four files joined into one 15 s file, transcribed in 6 s windows: the words keep their
    times (the frames are stitched, not re-timed): as in one window, and within two encoder
    frames of the truth. The model never heard these files joined, so it misses a few words
    (measured 14 of 18 right); the times are checked on the words it got."""
    model, spoken, _ = overfitted
    parts, truth, offset = [], [], 0.0
    for item in spoken[:4]:
        audio = load_audio(item.path)
        parts.append(audio)
        truth += [(w, offset + s, offset + e) for w, s, e in item.words]
        offset += len(audio) / SAMPLE_RATE
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate(parts), SAMPLE_RATE, subtype="FLOAT")
    (windowed,) = transcribe(model, [path], timestamps=True, window_s=6.0, overlap_s=2.0)
    (whole,) = transcribe(model, [path], timestamps=True, window_s=60.0)
    assert offset > 12.0  # at least three windows
    matcher = difflib.SequenceMatcher(a=[w.text for w in windowed.words],
                                      b=[w for w, _, _ in truth], autojunk=False)  # fmt: skip
    pairs = [(windowed.words[i + k], truth[j + k])
             for i, j, n in matcher.get_matching_blocks() for k in range(n)]  # fmt: skip
    assert len(pairs) >= 0.6 * len(truth)
    for word, (_, start, end) in pairs:
        assert abs(word.start - start) <= 2 * FRAME_S and abs(word.end - end) <= 2 * FRAME_S
    if windowed.text == whole.text:  # windows only move frames within their overlaps
        for a, b in zip(windowed.words, whole.words, strict=True):
            assert abs(a.start - b.start) <= FRAME_S and abs(a.end - b.end) <= FRAME_S


def test_word_times_come_from_the_ctc_alignment() -> None:
    """Tokens own the frames where they are the best token; words split at the space."""
    from squeezer.text import CharTokenizer

    tokenizer = CharTokenizer()
    a, b, c = (tokenizer.encode(letter)[0] for letter in "abc")
    space = 1  # CharTokenizer: id 1 is the space
    ids = [0, 0, a, a, 0, space, b, 0, c, 0]
    log_probs = torch.full((len(ids), tokenizer.vocab_size + 1), -10.0)
    log_probs[torch.arange(len(ids)), torch.tensor(ids)] = -0.01
    words = word_timings(log_probs, tokenizer, FRAME_S)
    assert [w.text for w in words] == ["a", "bc"]
    assert [(round(w.start / FRAME_S), round(w.end / FRAME_S)) for w in words] == [(2, 4), (6, 9)]
    assert all(abs(w.confidence - np.exp(-0.01)) < 1e-6 for w in words)


def test_speech_segments_and_snapping() -> None:
    """Two tone bursts with a pause: their edges to 10 ms. Two words in one segment split at the
    middle of the pause between their token spans; no pauses leave the spans as they are."""
    audio = np.zeros(SAMPLE_RATE * 3, np.float32)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    audio[8000:16000], audio[32000:44000] = tone[:8000], tone[:12000]
    audio += 1e-4 * np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32)
    segments = speech_segments(torch.from_numpy(audio), SAMPLE_RATE)
    assert np.allclose(segments, [(0.5, 1.0), (2.0, 2.75)], atol=0.011)
    words = [Timing("a", 0.6, 0.7, 1.0), Timing("b", 2.1, 2.2, 1.0), Timing("c", 2.5, 2.6, 1.0)]
    snapped = snap_to_speech(words, segments)
    assert (snapped[0].start, snapped[0].end) == pytest.approx(segments[0])
    assert snapped[1].start == pytest.approx(2.0, abs=0.011) and snapped[1].end == 2.35
    assert snapped[2].start == 2.35 and snapped[2].end == pytest.approx(2.75, abs=0.011)
    steady = torch.from_numpy(tone.astype(np.float32))  # no pause anywhere
    assert speech_segments(steady, SAMPLE_RATE) == []
    assert snap_to_speech(words, []) == words


SRT_CUE = re.compile(
    r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)\n"
)
VTT_CUE = re.compile(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})\n(.+)\n")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """A strict SubRip reader: numbered cues from 1, one blank line between, nothing else."""
    blocks = text.split("\n\n")
    cues = []
    for number, block in enumerate(blocks, start=1):
        match = SRT_CUE.fullmatch(block if block.endswith("\n") else block + "\n")
        assert match, f"not an SRT cue: {block!r}"
        assert int(match[1]) == number
        cues.append((_seconds(*match.groups()[1:5]), _seconds(*match.groups()[5:9]), match[10]))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """A strict WebVTT reader: the header line, then cues separated by blank lines."""
    header, *blocks = text.split("\n\n")
    assert header == "WEBVTT"
    cues = []
    for block in blocks:
        match = VTT_CUE.fullmatch(block if block.endswith("\n") else block + "\n")
        assert match, f"not a WebVTT cue: {block!r}"
        cues.append((_seconds(*match.groups()[:4]), _seconds(*match.groups()[4:8]), match[9]))
    return cues


def _check_cues(cues: list[tuple[float, float, str]], words: list[Timing]) -> None:
    assert " ".join(text for _, _, text in cues) == " ".join(w.text for w in words)
    for (start, end, _), following in zip(cues, [*cues[1:], None], strict=True):
        assert start <= end and (following is None or end <= following[0])
    assert all(len(text) <= 42 or " " not in text for _, _, text in cues)


def test_subtitles_parse_strictly_with_monotonic_cues() -> None:
    rng = np.random.default_rng(1)
    words, now = [], 0.0
    for index in range(60):  # an hour-long talk's worth of clock digits: 3 h 20 min apart
        length = float(rng.uniform(0.1, 0.6))
        words.append(Timing(f"word{index}", now, now + length, 0.9))
        now += length + float(rng.choice([0.05, 0.3, 1.5, 200.0]))
    _check_cues(parse_srt(format_srt(words)), words)
    _check_cues(parse_vtt(format_vtt(words)), words)
    assert parse_srt(format_srt(words[:1]))[0][:2] == pytest.approx((0.0, words[0].end), abs=1e-3)


def test_cli_writes_subtitles_json_and_a_summary(overfitted, tmp_path, capsys) -> None:
    """A folder in, one file out per input, and a summary naming the unreadable file."""
    model, spoken, _ = overfitted
    model_dir = tmp_path / "model"
    from squeezer.model import save_model

    save_model(model, model_dir, model.tokenizer)
    folder = tmp_path / "audio"
    folder.mkdir()
    for item in spoken[:3]:
        (folder / item.path.name).write_bytes(item.path.read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt not audio")
    for fmt in ("srt", "vtt", "json"):
        out = tmp_path / fmt
        command = ["transcribe", str(model_dir), str(folder), "--format", fmt, "--out", str(out)]
        assert main([*command, "--timestamps"] if fmt == "json" else command) == 0
        assert sorted(p.name for p in out.glob(f"utt*.{fmt}")) == [
            f"utt{i:02d}.{fmt}" for i in range(3)
        ]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["files"] == 4 and summary["transcribed"] == 3
        assert [Path(f["path"]).name for f in summary["unreadable"]] == ["broken.wav"]
    parse_srt((tmp_path / "srt" / "utt00.srt").read_text())
    parse_vtt((tmp_path / "vtt" / "utt01.vtt").read_text())
    record = json.loads((tmp_path / "json" / "utt02.json").read_text())
    assert [w["text"] for w in record["words"]] == [w for w, _, _ in spoken[2].words]
    capsys.readouterr()
    assert main(["transcribe", str(model_dir), str(spoken[0].path), "--timestamps", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"]


def test_batched_transcription_equals_one_file_at_a_time(overfitted, tmp_path) -> None:
    """Batching by length changes nothing a file gets (the model is padding-invariant), the
    order follows the input, and an unreadable file in the middle is reported, not fatal."""
    model, spoken, _ = overfitted
    missing = tmp_path / "missing.wav"
    paths = [s.path for s in spoken[:6]] + [missing] + [s.path for s in spoken[6:]]
    batched = transcribe(model, paths, batch_seconds=30.0)
    alone = transcribe(model, paths, batch_seconds=1e-9)
    assert [r.path for r in batched] == [str(p) for p in paths]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert batched[6].error and "no such file" in batched[6].error and batched[6].text == ""
    summary = summarize(batched)
    assert summary["transcribed"] == 16 and summary["unreadable"][0]["path"] == str(missing)
    assert summary["real_time_factor"] > 0 and summary["audio_hours"] > 0


def test_inputs_from_folders_lists_and_manifests(overfitted, tmp_path) -> None:
    _, spoken, manifest = overfitted
    listing = tmp_path / "files.txt"
    relative = [Path("..") / s.path.parent.name / s.path.name for s in spoken[:2]]
    listing.write_text(f"# two files\n{relative[0]}\n\n{spoken[1].path}  # absolute\n")
    (tmp_path / "sub").mkdir()
    listed = collect_audio([listing])
    assert [p.resolve() for p in listed] == [s.path.resolve() for s in spoken[:2]]
    assert [p.resolve() for p in collect_audio([manifest])] == [s.path.resolve() for s in spoken]
    found = [p for p in collect_audio([spoken[0].path.parent]) if p.name.startswith("utt")]
    assert found == sorted(s.path for s in spoken)
    with pytest.raises(ValueError, match="no audio files"):
        collect_audio([tmp_path / "sub"])
