"""The transcription benchmark's pieces on a tiny model: every measurement runs and is reported."""

from __future__ import annotations

from squeezer.analysis import bench_transcribe
from squeezer.data.joined_words import joined_words
from tests.test_transcribe import tiny_model


def test_bench_transcribe_measures_and_reports(tmp_path) -> None:
    model = tiny_model()
    errors = bench_transcribe.boundary_errors(model, count_per_voice=1)
    assert all(e.words >= e.recognised >= 0 and e.p90_ms >= e.median_ms >= 0 for e in errors)
    paths = [spoken.path for spoken in joined_words(tmp_path, count=3)]
    factors = bench_transcribe.throughput(model, paths, rounds=2, batch_seconds=60.0)
    assert [len(v) for v in factors.values()] == [2, 2]
    assert all(f > 0 for values in factors.values() for f in values)
    report = bench_transcribe.format_markdown("tiny", errors, factors, "squeezer bench", 2, 1)
    assert report.count("| one file at a time |") == 1 and "| batched (60 s a batch) |" in report
