from __future__ import annotations

import subprocess
import sys

from squeezer.cli import main, write_report_section


def test_presets_verb_prints_the_zoo(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "squeezeformer-xs" in out and "9.03M" in out and "conformer-l" in out


def test_bad_input_is_one_clear_line(capsys):
    assert main(["bench", "--presets", "squeezeformer-xxl", "--no-peer"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "squeezeformer-xxl" in err


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "squeezer", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("squeezer ")


def test_report_sections_replace_only_their_own_text(tmp_path):
    path = tmp_path / "benchmarks.md"
    write_report_section(path, "a", "first A")
    write_report_section(path, "b", "only B")
    write_report_section(path, "a", "second A")
    text = path.read_text()
    assert "second A" in text and "first A" not in text and "only B" in text
    assert text.index("second A") < text.index("only B")
    assert "<!-- a: end -->\n\n<!-- b: start -->" in text  # the blank line between stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmarks.md"]  # no temporary


def test_a_closed_pipe_ends_the_command_quietly():
    """`squeezer recipes | head -1`: no traceback when the reader goes away."""
    process = subprocess.Popen([sys.executable, "-m", "squeezer", "recipes"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    process.stdout.close()  # gone before the command (a second of imports) writes a byte
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in stderr, stderr
