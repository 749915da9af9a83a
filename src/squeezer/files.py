"""Files written in one step: a crash, a kill or a full disk leaves the old file (or none),
never half of a new one. The standard library alone, so every part of squeezer can use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["replaced_atomically", "write_bytes_atomically", "write_text_atomically"]


@contextlib.contextmanager
def replaced_atomically(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` for the caller to write; when the block ends it
    replaces `path` in one step (`os.replace`: same folder, so one file system). If the block
    raises, the temporary file is removed and `path` is left as it was.

    `suffix` ends the temporary name, for writers that choose a format by extension.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` in one step; return `path`."""
    with replaced_atomically(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` in one step; return `path`."""
    return write_bytes_atomically(path, text.encode("utf-8"))
