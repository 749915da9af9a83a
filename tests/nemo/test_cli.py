"""The import-nemo verb, and transcribe on a .nemo file directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import squeezer
from squeezer.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nemo"


def test_import_then_transcribe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nemo = FIXTURES / "squeezeformer_char.nemo"
    audio = FIXTURES / "audio" / "utt1.wav"
    expected = np.load(FIXTURES / "squeezeformer_char.npz")["texts"][1]
    assert main(["import-nemo", str(nemo), "--out", str(tmp_path / "model")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "model")
    assert squeezer.load_model(tmp_path / "model").tokenizer.decode_style == "nemo"
    for model in (tmp_path / "model", nemo):
        assert main(["transcribe", str(model), str(audio)]) == 0
        assert capsys.readouterr().out.rstrip("\n") == f"{audio}\t{expected}"
