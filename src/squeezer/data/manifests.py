"""Corpora as Lhotse CutSets stored as `.jsonl.gz` manifests.

Audio paths inside a manifest are stored relative to the manifest's own folder, so a corpus
folder can be moved or copied to another machine as a whole; `load_cuts` resolves them.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.serialization import deserialize_item
from lhotse.utils import fastcopy

from squeezer.files import replaced_atomically

__all__ = ["load_cuts", "read_manifest", "save_cuts"]

log = logging.getLogger(__name__)


def save_cuts(cuts: CutSet, path: str | Path) -> Path:
    """Write `cuts` to `path` (.jsonl.gz), audio paths relative to its folder, atomically."""
    path = Path(path)
    if not path.name.endswith(".jsonl.gz"):
        raise ValueError(f"{path}: a manifest name must end in .jsonl.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    convert = partial(_relative, base=str(path.parent.resolve()))
    relative = cuts.map(partial(_map_paths, convert=convert))
    with replaced_atomically(path, suffix=".jsonl.gz") as temporary:  # lhotse reads the suffix
        relative.to_file(temporary)
    return path


def load_cuts(path: str | Path) -> CutSet:
    """Read a manifest written by `save_cuts` (or any Lhotse cut manifest), resolving paths.

    Lines that are not cuts are skipped with one warning that counts them per reason (see
    `read_manifest`); a manifest with no cut at all is an error.
    """
    cuts, skipped = read_manifest(path)
    if skipped:
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items()))
        log.warning("%s: skipped %d lines (%s)", path, skipped.total(), counts)
    return cuts


def read_manifest(path: str | Path) -> tuple[CutSet, Counter]:
    """The cuts of a `.jsonl(.gz)` manifest and the count of skipped lines per reason.

    One bad line in a million (a byte flipped by a copy, a transcript in another encoding, a
    half-written last line) costs that line, not the run: it is counted under "not UTF-8",
    "not JSON", "not a cut" (wrong fields or types), "text not valid Unicode" or "duplicate id".
    A file that cannot be decompressed, or that holds no cut at all, is a one-line error.
    Other Lhotse formats (.json, .yaml) are read by Lhotse as a whole.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    if not path.name.endswith((".jsonl", ".jsonl.gz")):
        try:
            cuts = CutSet.from_file(path).to_eager()
        except Exception as error:  # lhotse raises many types for a malformed file
            raise ValueError(f"{path}: not a readable Lhotse cut manifest ({error})") from error
        return _resolved(cuts, path), Counter()
    cuts, seen, skipped = [], set(), Counter()
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        cut, reason = _parse_line(line)
        if cut is not None and cut.id in seen:
            cut, reason = None, "duplicate id"
        if cut is None:
            skipped[reason] += 1
            log.debug("%s:%d: %s", path, number, reason)
            continue
        seen.add(cut.id)
        cuts.append(cut)
    if not cuts:
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items()))
        raise ValueError(f"{path}: no cut in the manifest ({counts or 'empty'})")
    return _resolved(CutSet.from_cuts(cuts), path), skipped


def _lines(path: Path) -> Iterator[bytes]:
    """The raw lines of a manifest, gunzipped when it is gzip (judged by its magic bytes)."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed else open
    number = 0
    try:
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):  # noqa: B007 (used in the error)
                yield line
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"{path}: the file is damaged after line {number} ({error}); restore it or "
            "cut the manifest there"
        ) from None


def _parse_line(line: bytes) -> tuple[Cut | None, str]:
    """(the cut, "") or (None, why the line is not one)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, "not a cut"
    try:
        cut = deserialize_item(data)
        _check_cut(cut)
    except UnicodeEncodeError:
        return None, "text not valid Unicode"
    except Exception:  # lhotse's constructors raise many types for wrong fields or types
        return None, "not a cut"
    return cut, ""


def _check_cut(cut: Cut) -> None:
    """Raise unless the fields the toolkit reads have the types it reads them as."""
    if not isinstance(cut, Cut) or not isinstance(cut.id, str) or not cut.id:
        raise ValueError("not a cut")
    for number in (cut.start, cut.duration, cut.recording.duration):
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError("not a number")
        if not math.isfinite(number) or number < 0:
            raise ValueError("not a duration")
    if cut.recording.sampling_rate <= 0 or not cut.recording.sources:
        raise ValueError("no audio")
    for source in cut.recording.sources:
        if not isinstance(source.source, str):
            raise ValueError("not a path")
    for supervision in cut.supervisions:
        if supervision.text is not None:
            if not isinstance(supervision.text, str):
                raise ValueError("not a text")
            supervision.text.encode("utf-8")  # a lone surrogate (a bad \u escape) raises


def _resolved(cuts: CutSet, path: Path) -> CutSet:
    convert = partial(_absolute, base=str(path.parent.resolve()))
    return cuts.map(partial(_map_paths, convert=convert)).to_eager()


def _map_paths(cut: Cut, convert: Callable[[str], str]) -> Cut:
    """The cut with each file source of its recording passed through `convert`."""
    sources = [
        fastcopy(source, source=convert(source.source)) if source.type == "file" else source
        for source in cut.recording.sources
    ]
    return fastcopy(cut, recording=fastcopy(cut.recording, sources=sources))


def _relative(path: str, base: str) -> str:
    return os.path.relpath(path, base) if os.path.isabs(path) else path


def _absolute(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))
