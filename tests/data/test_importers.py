from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from squeezer.data.importers import import_folder, import_librispeech, import_nemo_manifest
from squeezer.data.manifests import load_cuts, save_cuts


def tone(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.1 * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    sf.write(path, np.stack([signal] * channels, axis=1) if channels > 1 else signal, rate)
    return path


@pytest.fixture
def librispeech(tmp_path: Path) -> Path:
    root = tmp_path / "LibriSpeech" / "dev-clean"
    for speaker, chapter in [("84", "121123"), ("174", "50561")]:
        folder = root / speaker / chapter
        lines = []
        for utt in range(3):
            utt_id = f"{speaker}-{chapter}-{utt:04d}"
            tone(folder / f"{utt_id}.flac", seconds=0.3 + 0.1 * utt)
            lines.append(f"{utt_id} HELLO WORLD NUMBER {utt}")
        lines.append(f"{speaker}-{chapter}-0099 AUDIO IS MISSING")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "LibriSpeech"


def test_librispeech_layout(librispeech):
    report = import_librispeech(librispeech)
    assert len(report.cuts) == 6
    assert report.skipped == {"missing audio": 2}
    texts = sorted(c.supervisions[0].text for c in report.cuts)
    assert texts[0] == "HELLO WORLD NUMBER 0"
    speakers = {c.supervisions[0].speaker for c in report.cuts}
    assert speakers == {"84", "174"}
    durations = sorted(round(c.duration, 3) for c in report.cuts)
    assert durations == [0.3, 0.3, 0.4, 0.4, 0.5, 0.5]


def test_nemo_manifest_with_relative_paths_offsets_and_bad_entries(tmp_path):
    tone(tmp_path / "audio" / "a.wav", seconds=1.0)
    tone(tmp_path / "audio" / "stereo8k.wav", seconds=0.5, rate=8000, channels=2)
    (tmp_path / "audio" / "broken.wav").write_text("not audio at all")
    entries = [
        {"audio_filepath": "audio/a.wav", "duration": 0.4, "offset": 0.5, "text": "second half"},
        {"audio_filepath": "audio/stereo8k.wav", "duration": 0.5, "text": "stereo"},
        {"audio_filepath": "audio/broken.wav", "duration": 1.0, "text": "broken"},
        {"audio_filepath": "audio/missing.wav", "duration": 1.0, "text": "missing"},
        {"audio_filepath": "audio/a.wav", "duration": 1.0, "text": "   "},
    ]
    manifest = tmp_path / "train.json"
    manifest.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    report = import_nemo_manifest(manifest)
    assert len(report.cuts) == 2
    assert report.skipped == {"unreadable audio": 1, "missing audio": 1, "empty transcript": 1}
    first = next(c for c in report.cuts if c.supervisions[0].text == "second half")
    assert first.start == pytest.approx(0.5) and first.duration == pytest.approx(0.4)


def test_nemo_manifest_malformed_line_names_file_and_line(tmp_path):
    manifest = tmp_path / "bad.json"
    manifest.write_text('{"audio_filepath": "x.wav", "text": "a"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad\.json:2"):
        import_nemo_manifest(manifest)


def test_folder_layout_and_transcript_problems(tmp_path):
    tone(tmp_path / "spk1" / "one.flac")
    (tmp_path / "spk1" / "one.txt").write_text("first utterance\n")
    tone(tmp_path / "spk1" / "two.wav")
    (tmp_path / "spk1" / "two.txt").write_bytes(b"caf\xe9 latin-1")
    tone(tmp_path / "spk2" / "three.ogg")  # no transcript
    tone(tmp_path / "spk2" / "four.wav", seconds=0.0)
    (tmp_path / "spk2" / "four.txt").write_text("empty audio")
    report = import_folder(tmp_path)
    assert [c.supervisions[0].text for c in report.cuts] == ["first utterance"]
    assert report.skipped == {
        "non-UTF-8 transcript": 1,
        "missing transcript": 1,
        "empty audio": 1,
    }


def test_nothing_usable_and_missing_roots_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        import_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no LibriSpeech"):
        import_librispeech(tmp_path)
    (tmp_path / "x.txt").write_text("orphan")
    tone(tmp_path / "x.wav", seconds=0.0)
    with pytest.raises(ValueError, match="no usable utterances"):
        import_folder(tmp_path)


def test_manifest_round_trip_is_relocatable(librispeech, tmp_path):
    cuts = import_librispeech(librispeech).cuts
    save_cuts(cuts, tmp_path / "manifests" / "dev.jsonl.gz")
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / "manifests").rename(moved / "manifests")
    librispeech.rename(moved / "LibriSpeech")
    loaded = load_cuts(moved / "manifests" / "dev.jsonl.gz")
    assert sorted(loaded.ids) == sorted(cuts.ids)
    assert all(c.load_audio().shape[-1] > 0 for c in loaded)


def test_load_cuts_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"none\.jsonl\.gz"):
        load_cuts(tmp_path / "none.jsonl.gz")
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.jsonl\.gz"):
        load_cuts(bad)
