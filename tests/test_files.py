"""Atomic writes: the new file appears whole or not at all."""

from __future__ import annotations

import pytest

from squeezer.files import replaced_atomically, write_text_atomically


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), replaced_atomically(path) as temporary:
        temporary.write_text("half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_a_write_replaces_the_file_and_creates_its_folder(tmp_path):
    path = tmp_path / "new" / "stats.json"
    assert write_text_atomically(path, "{}\n") == path
    assert path.read_text() == "{}\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["stats.json"]


def test_the_suffix_ends_the_temporary_name(tmp_path):
    with replaced_atomically(tmp_path / "cuts.jsonl.gz", suffix=".jsonl.gz") as temporary:
        assert temporary.name.endswith(".jsonl.gz") and temporary.parent == tmp_path
        temporary.write_bytes(b"x")
    assert (tmp_path / "cuts.jsonl.gz").read_bytes() == b"x"
