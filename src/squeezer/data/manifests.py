"""Corpora as Lhotse CutSets stored as `.jsonl.gz` manifests.

Audio paths inside a manifest are stored relative to the manifest's own folder, so a corpus
folder can be moved or copied to another machine as a whole; `load_cuts` resolves them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.utils import fastcopy

__all__ = ["load_cuts", "save_cuts"]


def save_cuts(cuts: CutSet, path: str | Path) -> Path:
    """Write `cuts` to `path` (.jsonl.gz), audio paths relative to its folder, atomically."""
    path = Path(path)
    if not path.name.endswith(".jsonl.gz"):
        raise ValueError(f"{path}: a manifest name must end in .jsonl.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    convert = partial(_relative, base=str(path.parent.resolve()))
    relative = cuts.map(partial(_map_paths, convert=convert))
    temporary = path.with_name(path.name + ".tmp.jsonl.gz")
    relative.to_file(temporary)
    os.replace(temporary, path)
    return path


def load_cuts(path: str | Path) -> CutSet:
    """Read a manifest written by `save_cuts` (or any Lhotse cut manifest), resolving paths."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    try:
        cuts = CutSet.from_file(path).to_eager()
    except Exception as error:  # lhotse raises many types for a malformed file
        raise ValueError(f"{path}: not a readable Lhotse cut manifest ({error})") from error
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
