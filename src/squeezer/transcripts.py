"""`squeezer transcribe`'s inputs and outputs: which files to read, and what to write for each.

Inputs may be audio files, folders (searched recursively for audio), list files (one audio path
per line, relative to the list's folder; `#` starts a comment) and Lhotse manifests
(`.jsonl` / `.jsonl.gz`: every cut's recording). Outputs are one of txt, json, srt, vtt per file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from squeezer.timestamps import format_srt, format_vtt
from squeezer.transcribe import Transcription

__all__ = ["AUDIO_SUFFIXES", "FORMATS", "SUMMARY_FILE", "collect_audio", "render",
           "write_transcripts"]  # fmt: skip

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".sph", ".aiff", ".aif")
LIST_SUFFIXES = (".txt", ".lst", ".list", ".scp")
Format = Literal["txt", "json", "srt", "vtt"]
FORMATS: tuple[Format, ...] = ("txt", "json", "srt", "vtt")
SUMMARY_FILE = "summary.json"  # beside the transcripts; a file named summary gets summary-2


def collect_audio(inputs: Sequence[str | Path]) -> list[Path]:
    """The audio files named by `inputs`, in order. A path that does not exist is kept (it
    becomes an unreadable file in the summary); a folder without audio is an error."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise ValueError(f"{item}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in it")
            paths += found
        elif item.name.endswith((".jsonl", ".jsonl.gz")):
            paths += _manifest_audio(item)
        elif item.suffix.lower() in LIST_SUFFIXES and item.is_file():
            paths += _listed_audio(item)
        else:
            paths.append(item)
    return paths


def _manifest_audio(path: Path) -> list[Path]:
    from squeezer.data.manifests import load_cuts

    return [Path(cut.recording.sources[0].source) for cut in load_cuts(path)]


def _listed_audio(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(
            f"{path}: a list file must be UTF-8 text, one audio path per line"
        ) from None
    entries = (line.split("#", 1)[0].strip() for line in lines)
    return [path.parent / entry for entry in entries if entry]


def render(result: Transcription, fmt: Format) -> str:
    """One file's transcript in `fmt` (srt / vtt need its word times)."""
    if fmt == "txt":
        return result.text + "\n"
    if fmt == "json":
        return json.dumps(result.to_dict(), ensure_ascii=False) + "\n"
    if fmt == "srt":
        return format_srt(result.words)
    if fmt == "vtt":
        return format_vtt(result.words)
    raise ValueError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")


def write_transcripts(results: Sequence[Transcription], out_dir: Path, fmt: Format) -> list[Path]:
    """OUT/<file stem>.<fmt> for every readable file (a repeated stem gets a numbered suffix)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written, used = [], {SUMMARY_FILE}
    for result in results:
        if result.error is not None:
            continue
        stem, number = Path(result.path).stem, 1
        name = f"{stem}.{fmt}"
        while name in used:
            number += 1
            name = f"{stem}-{number}.{fmt}"
        used.add(name)
        target = out_dir / name
        temporary = target.with_name(f".{name}.tmp")
        temporary.write_text(render(result, fmt), encoding="utf-8")
        temporary.replace(target)
        written.append(target)
    return written
