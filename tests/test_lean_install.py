"""`pip install squeezer` without extras: the encoder with torch and PyYAML alone.

Builds a fresh venv from a copy of the package (torch pinned first, as the Makefile does, so
that no CUDA build is pulled), then runs an encoder forward and backward with an attention
bias there, and checks that what needs an extra says which one in one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SPEECH_MODULES = ["numpy", "lhotse", "soundfile", "sentencepiece", "safetensors", "pyctcdecode"]
OTHER_MODULES = ["matplotlib", "onnx", "onnxruntime", "onnxscript"]

LEAN_SCRIPT = """
import importlib.util, sys
import torch
import squeezer, squeezer.nn
from squeezer import EncoderConfig, PairBias, SequenceEncoder
from squeezer.nn import GeMPool, PositionHead, position_regression_loss

absent = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None]
assert not absent, f"installed without an extra: {absent}"
config = EncoderConfig(input_dim=6, d_model=32, num_layers=4, num_heads=4, subsampling="none",
                       time_reduce_idx=1, time_recover_idx=3, position="rope", drop_path=0.1)
encoder, pair_bias = SequenceEncoder(config).train(), PairBias(1, 4, hidden=8)
head = PositionHead(32, 2, gru_hidden=8)
x, lengths = torch.randn(3, 20, 6), torch.tensor([20, 13, 7])
features, out_lengths = encoder(x, lengths, attn_bias=pair_bias(torch.rand(3, 20, 20), lengths))
targets = torch.randn(3, 20, 2)
loss = position_regression_loss(head(features, out_lengths), targets, out_lengths)
loss = loss + GeMPool()(features, out_lengths).mean()
loss.backward()
assert all(p.grad is not None for p in pair_bias.parameters())
try:
    squeezer.load_model("model")
except ModuleNotFoundError as error:
    print(error)
loaded = [m for m in sys.argv[1:] if m in sys.modules]
assert not loaded, loaded
print("lean ok")
"""


def _venv(root: Path, requirement: str) -> Path:
    """A fresh venv at `root/venv` holding torch (this one's version, CPU) and then
    `requirement`, where "source" is a copy of the package."""
    source = root / "source"
    (source / "src").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src" / "squeezer", source / "src" / "squeezer",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    torch_version = torch.__version__.split("+")[0]
    for item in (f"torch=={torch_version}", requirement.replace("source", str(source))):
        subprocess.run([str(python), "-m", "pip", "install", "-q", item], check=True,
                       capture_output=True, timeout=600)  # fmt: skip
    return venv


@pytest.fixture(scope="module")
def lean_venv(tmp_path_factory) -> Path:
    return _venv(tmp_path_factory.mktemp("lean"), "source")


def run(venv: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": ""}  # nothing from the dev venv or the repo
    return subprocess.run(args, capture_output=True, text=True, cwd=venv.parent, timeout=300,
                          env=environment)  # fmt: skip


def test_the_encoder_trains_with_torch_and_pyyaml_alone(lean_venv):
    result = run(lean_venv, str(lean_venv / "bin" / "python"), "-c", LEAN_SCRIPT,
                 *SPEECH_MODULES, *OTHER_MODULES)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "lean ok"
    assert lines[0] == (
        "squeezer.load_model: this needs the 'speech' extra (module 'safetensors' is not "
        "installed): pip install 'squeezer[speech]'"
    )


@pytest.mark.parametrize(("verb", "extra"), [(["presets"], "speech"),
                                             (["flops", "squeezeformer-xs"], "plots")])  # fmt: skip
def test_a_verb_that_needs_an_extra_names_it_in_one_line(lean_venv, verb, extra):
    result = run(lean_venv, str(lean_venv / "bin" / "squeezer"), *verb)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"needs the '{extra}' extra" in result.stderr
    assert f"pip install 'squeezer[{extra}]'" in result.stderr


def test_importing_squeezer_and_its_nn_loads_no_extra_even_where_installed():
    """In the full venv too: the core's imports reach no speech, plot or export module (numpy
    aside: torch itself imports it wherever it is installed)."""
    modules = [m for m in SPEECH_MODULES + OTHER_MODULES if m != "numpy"]
    script = ("import sys, squeezer, squeezer.nn; "
              f"print([m for m in {modules!r} if m in sys.modules])")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=REPO)  # fmt: skip
    assert result.stdout.strip() == "[]"


def test_sequence_tasks_train_evaluate_and_predict_with_the_sequences_extra(tmp_path_factory):
    """`pip install 'squeezer[sequences]'`: the CLI's sequence verbs run end to end, from a
    recipe shipped in the package, with no package of the speech extra installed."""
    from tests.sequences.data import write_recipe

    venv = _venv(tmp_path_factory.mktemp("sequences"), "source[sequences]")
    python, squeezer = str(venv / "bin" / "python"), str(venv / "bin" / "squeezer")
    speech_only = ["lhotse", "soundfile", "soxr", "sentencepiece", "jiwer", "pyctcdecode"]
    script = f"import importlib.util as u; print([m for m in {speech_only!r} if u.find_spec(m)])"
    assert run(venv, python, "-c", script).stdout.strip() == "[]"
    data = tmp_path_factory.mktemp("data")
    write_recipe(data, "classify")  # its train and dev splits; the recipe is the packaged one
    dev, model = data / "classify_dev.jsonl", data / "run" / "model"
    small = {"data.train": data / "classify_train.jsonl", "data.dev": dev, "run.max_steps": 2,
             "run.checkpoint_every": 2, "optim.warmup_steps": 1, "encoder.d_model": 32,
             "encoder.num_layers": 4, "encoder.time_reduce_idx": 1,
             "encoder.time_recover_idx": 3}  # fmt: skip
    sets = [f"--set={key}={value}" for key, value in small.items()]
    verbs = [["train", "sequences/classify", "--out", str(data / "run"), *sets],
             ["evaluate", str(model), str(dev)],
             ["predict", str(model), str(dev), "--out", str(data / "preds.parquet")]]  # fmt: skip
    for verb in verbs:
        result = run(venv, squeezer, *verb)
        assert result.returncode == 0, (verb[0], result.stderr[-2000:])
    assert (data / "preds.parquet").is_file()
