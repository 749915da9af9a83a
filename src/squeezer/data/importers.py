"""Importers behind `squeezer prepare`: existing corpora on disk -> Lhotse CutSets.

Three layouts:

- LibriSpeech: `<root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` with one
  `<speaker>-<chapter>.trans.txt` per chapter (`<utt-id> <TRANSCRIPT>` lines);
- a NeMo-style JSON-lines manifest: one `{"audio_filepath", "duration", "text"}` object per line
  (optional "offset"), relative paths taken from the manifest's folder;
- a plain folder of audio files, each with a same-named `.txt` transcript beside it.

Entries that cannot be used (missing or unreadable audio, empty or non-UTF-8 transcripts) are
skipped and counted per reason in an `ImportReport`, never passed on to training.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

__all__ = [
    "AUDIO_SUFFIXES",
    "ImportReport",
    "Utterance",
    "import_folder",
    "import_librispeech",
    "import_nemo_manifest",
]

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")


@dataclass(frozen=True)
class Utterance:
    """One audio file (or a segment of it) and what is said in it."""

    id: str
    audio: Path
    text: str
    speaker: str | None = None
    offset: float = 0.0
    duration: float | None = None  # None: to the end of the file


@dataclass
class ImportReport:
    """The imported cuts and, per reason, how many entries were skipped."""

    cuts: CutSet
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
        return f"{len(self.cuts)} utterances imported; skipped: {skipped or 'none'}"


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def _recording(utterance: Utterance) -> tuple[Recording | None, str | None]:
    """A Recording for the utterance's file, or the reason it cannot be used."""
    if not utterance.audio.is_file():
        return None, "missing audio"
    try:
        info = sf.info(str(utterance.audio))
    except (RuntimeError, sf.LibsndfileError):
        return None, "unreadable audio"
    if info.frames == 0 or info.samplerate <= 0:
        return None, "empty audio"
    recording = Recording.from_file(utterance.audio, recording_id=utterance.id)
    return recording, None


def build_cuts(utterances: Iterable[Utterance]) -> ImportReport:
    """Validate each utterance and assemble the usable ones into a CutSet."""
    recordings, supervisions, skipped = [], [], Counter()
    for utterance in utterances:
        text = " ".join(utterance.text.split())
        if not text:
            skipped["empty transcript"] += 1
            continue
        recording, problem = _recording(utterance)
        if problem is not None:
            skipped[problem] += 1
            continue
        duration = utterance.duration or recording.duration - utterance.offset
        if utterance.offset + duration > recording.duration + 1e-3 or duration <= 0:
            skipped["segment outside audio"] += 1
            continue
        recordings.append(recording)
        supervisions.append(
            SupervisionSegment(
                id=utterance.id,
                recording_id=utterance.id,
                start=utterance.offset,
                duration=duration,
                text=text,
                speaker=utterance.speaker,
                language="en",
            )
        )
    if not recordings:
        raise ValueError(f"no usable utterances (skipped: {dict(skipped) or 'none found'})")
    cuts = CutSet.from_manifests(
        recordings=RecordingSet.from_recordings(recordings),
        supervisions=SupervisionSet.from_segments(supervisions),
    )
    # One cut per supervision, trimmed to it (NeMo offsets select part of a file).
    return ImportReport(cuts.trim_to_supervisions(keep_overlapping=False).to_eager(), skipped)


def _import(
    utterances: Callable[[Path, Counter], Iterator[Utterance]], source: Path
) -> ImportReport:
    """Run one layout's utterance reader and add its own skip counts to the report's."""
    skipped: Counter = Counter()
    report = build_cuts(utterances(source, skipped))
    report.skipped.update(skipped)
    return report


def _librispeech_utterances(root: Path, skipped: Counter) -> Iterator[Utterance]:
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise ValueError(f"{root}: no LibriSpeech *.trans.txt files found")
    for transcript in transcripts:
        try:
            lines = _read_text(transcript).splitlines()
        except ValueError:
            skipped["non-UTF-8 transcript"] += 1
            continue
        for line in lines:
            utt_id, _, text = line.strip().partition(" ")
            if not utt_id:
                continue
            audio = transcript.parent / f"{utt_id}.flac"
            speaker = utt_id.split("-", 1)[0]
            yield Utterance(id=utt_id, audio=audio, text=text, speaker=speaker)


def import_librispeech(root: str | Path) -> ImportReport:
    """A LibriSpeech folder (a split such as `dev-clean`, or a parent holding several)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    return _import(_librispeech_utterances, root)


def _nemo_utterances(path: Path, skipped: Counter) -> Iterator[Utterance]:
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            audio = Path(entry["audio_filepath"])
            text = entry["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a NeMo manifest entry ({error})") from None
        if not isinstance(text, str):
            skipped["empty transcript"] += 1
            continue
        audio = audio if audio.is_absolute() else path.parent / audio
        yield Utterance(
            id=f"{audio.stem}-{number}",
            audio=audio,
            text=text,
            speaker=entry.get("speaker"),
            offset=float(entry.get("offset", 0.0)),
            duration=float(entry["duration"]) if "duration" in entry else None,
        )


def import_nemo_manifest(path: str | Path) -> ImportReport:
    """A NeMo JSON-lines manifest (`audio_filepath`, `duration`, `text`, optional `offset`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    return _import(_nemo_utterances, path)


def _folder_utterances(root: Path, skipped: Counter) -> Iterator[Utterance]:
    audio_files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not audio_files:
        raise ValueError(f"{root}: no {'/'.join(AUDIO_SUFFIXES)} files found")
    for audio in audio_files:
        transcript = audio.with_suffix(".txt")
        if not transcript.is_file():
            skipped["missing transcript"] += 1
            continue
        try:
            text = _read_text(transcript)
        except ValueError:
            skipped["non-UTF-8 transcript"] += 1
            continue
        utt_id = str(audio.relative_to(root).with_suffix("")).replace("/", "_")
        yield Utterance(id=utt_id, audio=audio, text=text, speaker=audio.parent.name)


def import_folder(root: str | Path) -> ImportReport:
    """A folder of audio files with same-named `.txt` transcripts (searched recursively)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    return _import(_folder_utterances, root)
