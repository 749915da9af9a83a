"""The Ribonanza-shape benchmark's worker, report and section rewriting (at a tiny shape)."""

from __future__ import annotations

import pytest

from squeezer.analysis import bench_sequence


@pytest.fixture
def tiny(monkeypatch):
    for name, value in dict(BATCH=2, FRAMES=24, WIDTH=16, BLOCKS=2, HEADS=2, KERNEL=5).items():
        monkeypatch.setattr(bench_sequence, name, value)


@pytest.mark.parametrize("encoder", ["squeezer", "squeezer+bias"])
def test_worker_times_forward_and_training(tiny, encoder):
    result = bench_sequence.worker(encoder, repeats=1, threads=1)
    assert result["encoder"] == encoder
    assert result["forward_s"] > 0 and result["train_s"] > 0 and result["params"] > 0


def fake_round(scale: float) -> list[dict]:
    return [{"encoder": e, "forward_s": f * scale, "train_s": 3 * f * scale, "params": 10}
            for e, f in zip(bench_sequence.ENCODERS, (2.0, 1.0, 1.05), strict=True)]  # fmt: skip


def test_report_gives_medians_and_per_round_ratios(tmp_path, monkeypatch):
    text = bench_sequence.markdown([fake_round(1.0), fake_round(2.0)], "cmd", 2)
    assert "| bias cost: with / without | 1.05 [1.05, 1.05] | 1.05 [1.05, 1.05] |" in text
    assert "| speed-up: peer / squeezer | 2.00 [2.00, 2.00] | 2.00 [2.00, 2.00] |" in text
    monkeypatch.setattr(bench_sequence, "run_rounds", lambda *args: [fake_round(1.0)])
    path = tmp_path / "doc.md"
    start, end = (
        f"<!-- {bench_sequence.SECTION}: start -->",
        f"<!-- {bench_sequence.SECTION}: end -->",
    )
    path.write_text(f"# Doc\n\nintro\n\n{start}\nold\n{end}\n\n## After\n\nkept\n")
    assert bench_sequence.main(["--out", str(path)]) == 0
    written = path.read_text()
    assert "old" not in written and "intro" in written and "## After\n\nkept" in written
    assert written.count(start) == 1 and "| bias cost: with / without |" in written
