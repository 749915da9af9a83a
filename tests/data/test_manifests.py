"""Manifests: round trips, and 300 seeded corruptions that must each end in a counted skip of
the bad lines or a one-line error naming the file, never a traceback from deeper down."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from squeezer.data.dataset import AsrDataset, cut_text, filter_cuts
from squeezer.data.manifests import load_cuts, read_manifest, save_cuts
from squeezer.features import FeatureConfig, LogMelFrontend
from squeezer.text import CharTokenizer

CASES = 300


@pytest.fixture(scope="module")
def small(corpus, tmp_path_factory) -> tuple[Path, list[bytes]]:
    """Eight cuts of the tiny corpus in a folder of their own: (manifest, its raw lines)."""
    out = tmp_path_factory.mktemp("small")
    cuts = load_cuts(corpus / "train.jsonl.gz").subset(first=8)
    path = save_cuts(cuts, out / "train.jsonl.gz")
    return path, gzip.decompress(path.read_bytes()).splitlines(keepends=True)


def test_round_trip_keeps_every_cut_and_resolves_paths(small, corpus):
    path, _ = small
    cuts, skipped = read_manifest(path)
    assert len(cuts) == 8 and not skipped
    original = load_cuts(corpus / "train.jsonl.gz").subset(first=8)
    for ours, theirs in zip(cuts, original, strict=True):
        assert ours.id == theirs.id and cut_text(ours) == cut_text(theirs)
        assert ours.recording.sources[0].source == theirs.recording.sources[0].source


def test_a_plain_jsonl_manifest_reads_too(small, tmp_path):
    _, lines = small
    plain = tmp_path / "train.jsonl"
    plain.write_bytes(b"".join(lines))
    assert len(read_manifest(plain)[0]) == 8


def test_missing_empty_and_all_bad_manifests_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such manifest"):
        read_manifest(tmp_path / "absent.jsonl.gz")
    empty = tmp_path / "empty.jsonl.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(ValueError, match=r"empty.jsonl.gz: no cut in the manifest \(empty\)"):
        read_manifest(empty)
    junk = tmp_path / "junk.jsonl.gz"
    junk.write_bytes(gzip.compress(b"[1, 2]\n{\n\xff\xfe\n"))
    with pytest.raises(ValueError, match=r"not JSON: 1, not UTF-8: 1, not a cut: 1"):
        read_manifest(junk)


def wrong_value(rng: random.Random):
    return rng.choice([None, True, -1, 1e308, float("nan"), "", "x" * 50, [], {}, [1, "a"],
                       {"type": "MonoCut"}, 2**70])  # fmt: skip


def mutate_json(value, rng: random.Random):
    """The same structure with one field somewhere replaced by a value of a wrong type, or
    deleted, or a new unknown field added."""
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        action = rng.random()
        if action < 0.45:
            value[key] = mutate_json(value[key], rng)
        elif action < 0.75:
            value[key] = wrong_value(rng)
        elif action < 0.9:
            del value[key]
        else:
            value[f"unknown_{rng.randrange(100)}"] = wrong_value(rng)
    elif isinstance(value, list) and value:
        index = rng.randrange(len(value))
        value[index] = mutate_json(value[index], rng) if rng.random() < 0.5 else wrong_value(rng)
    else:
        value = wrong_value(rng)
    return value


def corrupt(lines: list[bytes], rng: random.Random) -> tuple[bytes, bool]:
    """(manifest bytes, whether they are gzip-compressed) after one seeded corruption."""
    lines = list(lines)
    kind = rng.randrange(7)
    if kind == 0:  # bytes flipped in the text
        data = bytearray(b"".join(lines))
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return gzip.compress(bytes(data)), True
    if kind == 1:  # lines cut short, dropped or doubled
        for _ in range(rng.randint(1, 4)):
            index = rng.randrange(len(lines))
            line = lines[index]
            lines[index] = rng.choice(
                [line[: rng.randrange(max(1, len(line)))] + b"\n", b"", line * 2]
            )
        return gzip.compress(b"".join(lines)), True
    if kind in (2, 3):  # fields of wrong JSON types, missing or unknown
        for _ in range(rng.randint(1, 3)):
            index = rng.randrange(len(lines))
            record = mutate_json(json.loads(lines[index]), rng)
            lines[index] = json.dumps(record).encode() + b"\n"
        return gzip.compress(b"".join(lines)), True
    if kind == 4:  # the compressed file truncated
        data = gzip.compress(b"".join(lines))
        return data[: rng.randrange(1, len(data))], True
    if kind == 5:  # bytes flipped in the compressed file
        data = bytearray(gzip.compress(b"".join(lines)))
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(10, len(data))] = rng.randrange(256)
        return bytes(data), True
    # Text that is not UTF-8, or escapes that decode to lone surrogates.
    index = rng.randrange(len(lines))
    record = json.loads(lines[index])
    text = record["supervisions"][0]["text"]
    if rng.random() < 0.5:
        lines[index] = lines[index].replace(text.encode(), text.encode("utf-16"))
    else:
        record["supervisions"][0]["text"] = text + "\udc80"
        lines[index] = json.dumps(record).encode() + b"\n"
    return gzip.compress(b"".join(lines)), True


def test_corrupted_manifests_skip_what_is_bad_or_stop_in_one_line(small, tmp_path):
    """Every surviving cut must also pass through filtering and loading without a traceback:
    a manifest error may surface there too (a path that is not a string, a duration that is
    not a number)."""
    _, lines = small
    tokenizer = CharTokenizer.from_texts(json.loads(line)["supervisions"][0]["text"]
                                         for line in lines)  # fmt: skip
    dataset = AsrDataset(LogMelFrontend(FeatureConfig()), tokenizer.encode)
    outcomes = {"read": 0, "skipped lines": 0, "error": 0}
    for seed in range(CASES):
        rng = random.Random(seed)
        data, _ = corrupt(lines, rng)
        target = tmp_path / f"case{seed}.jsonl.gz"
        target.write_bytes(data)
        try:
            cuts, skipped = read_manifest(target)
        except ValueError as error:
            message = str(error)
            assert message.startswith(str(target)) and "\n" not in message, (seed, message)
            outcomes["error"] += 1
            continue
        outcomes["read"] += 1
        outcomes["skipped lines"] += skipped.total()
        assert 0 < len(cuts) <= len(lines) * 2
        frames = lambda samples: samples // 640  # noqa: E731 (40 ms frames)
        kept, report = filter_cuts(cuts, tokenizer.encode, frames, 0.1, 30.0)
        assert report.kept + report.dropped.total() == len(cuts)
        batch = dataset[CutSet.from_cuts(list(kept)[:2])] if len(kept) else None
        if batch is not None:
            assert len(batch) + len(batch.skipped) == min(2, len(kept)), seed
            assert torch.isfinite(batch.features).all()
    print(outcomes)
    # The corruptions reach every outcome, so none of the branches above is vacuous.
    assert outcomes["read"] > CASES // 3 and outcomes["error"] > 10
    assert outcomes["skipped lines"] > CASES // 3
