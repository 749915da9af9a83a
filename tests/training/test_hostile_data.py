"""A real training run on a manifest where about 2 % of the entries are bad.

Twelve kinds of bad entry among some 500 good ones (the tiny corpus's utterances, repeated
under new ids): the run must train through a whole epoch, count every skip per reason in
metrics.jsonl's data summary, and train on what is odd but usable (8 kHz, stereo, 8-bit);
`evaluate` and `transcribe` must name the unreadable files instead of crashing.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.cut import Cut
from lhotse.utils import fastcopy

from squeezer.audio import load_audio
from squeezer.data.manifests import load_cuts, save_cuts
from squeezer.model import AsrModel, save_model
from squeezer.text import CharTokenizer
from squeezer.training.checkpoints import load_checkpoint
from squeezer.training.metrics import read_metrics
from tests.conftest import first_utterances
from tests.training.test_loop import TINY_ENCODER, recipe, write_recipe

REPEATS = 6  # the tiny corpus's training split, six times under new ids


def cut_for(path: Path, cut_id: str, text: str, duration: float | None = None) -> Cut:
    """A cut of the whole file at `path` (its header read by Lhotse), with `text`."""
    recording = Recording.from_file(path, recording_id=cut_id)
    if duration is not None:  # the manifest promises what the file may not hold
        recording = fastcopy(recording, duration=duration,
                             num_samples=round(duration * recording.sampling_rate))  # fmt: skip
    cut = recording.to_cut()
    supervision = SupervisionSegment(cut_id, cut_id, 0.0, cut.duration, text=text)
    return fastcopy(cut, id=cut_id, supervisions=[supervision])


@pytest.fixture(scope="module")
def hostile(corpus, tmp_path_factory) -> tuple[Path, dict]:
    """(the manifest, what each bad entry should become)."""
    out = tmp_path_factory.mktemp("hostile")
    good = list(load_cuts(corpus / "train.jsonl.gz"))
    cuts = [fastcopy(cut, id=f"{cut.id}-r{r}") for r in range(REPEATS) for cut in good]
    sample = good[0]
    audio = load_audio(sample.recording.sources[0].source)
    text = sample.supervisions[0].text
    truncated = out / "truncated.flac"
    shutil.copy(sample.recording.sources[0].source, truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    sf.write(out / "empty.wav", np.zeros(0, np.float32), 16_000, subtype="FLOAT")
    nans = audio.copy()
    nans[len(nans) // 2] = np.nan
    sf.write(out / "nan.wav", nans, 16_000, subtype="FLOAT")
    sf.write(out / "ten-minutes.wav", np.zeros(600 * 16_000, np.int16), 16_000)
    sf.write(out / "8khz.wav", audio[::2], 8_000)
    sf.write(out / "stereo.wav", np.stack([audio, audio], axis=1), 16_000)
    sf.write(out / "8bit.wav", audio, 16_000, subtype="PCM_U8")
    missing = fastcopy(cut_for(out / "8khz.wav", "missing", text), recording=fastcopy(
        cut_for(out / "8khz.wav", "missing", text).recording,
        sources=[fastcopy(sample.recording.sources[0], source=str(out / "missing.flac"))],
    ))  # fmt: skip
    bad = [
        missing,
        cut_for(truncated, "truncated", text, duration=sample.duration),
        cut_for(out / "empty.wav", "empty-file", text, duration=sample.duration),
        cut_for(out / "nan.wav", "nan-samples", text),
        cut_for(out / "ten-minutes.wav", "ten-minutes", text),
        cut_for(out / "stereo.wav", "empty-text", ""),
        cut_for(out / "stereo.wav", "too-long-text", text * 20),
        cut_for(out / "8khz.wav", "8khz", text),
        cut_for(out / "stereo.wav", "stereo", text),
        cut_for(out / "8bit.wav", "8bit", text),
    ]
    manifest = save_cuts(CutSet.from_cuts(cuts + bad), out / "hostile.jsonl.gz")
    lines = gzip.decompress(manifest.read_bytes()).splitlines(keepends=True)
    latin1 = json.dumps(cut_for(out / "stereo.wav", "latin-1", "x").to_dict()).encode()
    lines.insert(100, latin1.replace(b'"x"', '"caf\u00e9"'.encode("latin-1")) + b"\n")
    lines.insert(200, lines[5][: len(lines[5]) // 2] + b"\n")  # a line cut short
    manifest.write_bytes(gzip.compress(b"".join(lines)))
    expected = {
        "filtered": {"shorter than 0.2 s": 0, "longer than 20.0 s": 1, "empty transcript": 1,
                     "more tokens than encoder frames (CTC cannot align)": 1,
                     "manifest line not UTF-8": 1, "manifest line not JSON": 1},
        "skipped": {"missing file": 1, "truncated or corrupt audio": 1, "empty audio": 1,
                    "non-finite samples": 1},
        "good": len(cuts) + 3,  # the repeats, and the 8 kHz, stereo and 8-bit files
        "bad": 12,
    }  # fmt: skip
    expected["filtered"] = {k: v for k, v in expected["filtered"].items() if v}
    return manifest, expected


def test_a_run_on_a_hostile_manifest_trains_and_counts_every_skip(hostile, tmp_path):
    manifest, expected = hostile
    assert 0.015 < expected["bad"] / (expected["good"] + expected["bad"]) < 0.03
    config = recipe(manifest, steps=None, checkpoint_every=1000)
    config = replace(config, data=replace(config.data, num_workers=1),
                     run=replace(config.run, epochs=1))  # fmt: skip
    path = write_recipe(config, tmp_path / "r.yaml")
    result = subprocess.run([sys.executable, "-m", "squeezer", "train", str(path), "--out",
                             str(tmp_path / "run")], capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = [r for r in read_metrics(tmp_path / "run") if r.get("summary") == "data"][-1]
    assert summary["filtered_cuts"] == expected["filtered"]
    assert summary["skipped_cuts"] == expected["skipped"]
    checkpoint = sorted((tmp_path / "run" / "checkpoints").glob("*.pt"))[-1]
    state = load_checkpoint(checkpoint)["train_state"]
    assert state["utterances"] == expected["good"]  # one epoch: every usable cut, once
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert "non-finite samples" in result.stderr  # the summary line in the log


def test_evaluate_and_transcribe_name_the_unreadable_files(hostile, tmp_path):
    manifest, _ = hostile
    cuts = load_cuts(manifest)
    # The bad entries and the first copy of the corpus; not the 10-minute file, which a
    # model without windowing would score as one 600 s utterance.
    keep = CutSet.from_cuts(c for c in cuts if c.duration < 60 and not re.search(r"-r[1-9]$", c.id))
    short = save_cuts(keep, tmp_path / "eval.jsonl.gz")
    tokenizer = CharTokenizer.from_texts([c.supervisions[0].text or "" for c in cuts])
    model_dir = tmp_path / "model"
    save_model(AsrModel(TINY_ENCODER.replace(input_dim=80), tokenizer.vocab_size), model_dir,
               tokenizer)  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "squeezer", "evaluate", str(model_dir),
                             str(short), "--out", str(tmp_path / "eval")], capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    unreadable = {Path(item["path"]).name for item in summary["unreadable"]}
    assert unreadable == {"missing.flac", "truncated.flac", "empty.wav", "nan.wav"}
    assert "4 utterances unreadable" in result.stdout
    files = [
        str(manifest.parent / name)
        for name in (
            "missing.flac",
            "truncated.flac",
            "empty.wav",
            "nan.wav",
            "8khz.wav",
            "8bit.wav",
        )
    ]
    result = subprocess.run([sys.executable, "-m", "squeezer", "transcribe", str(model_dir),
                             *files, "--out", str(tmp_path / "text")], capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "text" / "summary.json").read_text())
    assert summary["transcribed"] == 2
    assert {Path(item["path"]).name for item in summary["unreadable"]} == {
        "missing.flac", "truncated.flac", "empty.wav", "nan.wav"}  # fmt: skip


def test_a_run_whose_audio_is_all_gone_stops_in_one_line_and_exits(corpus, tmp_path):
    """With a loader worker (which leaves SIGTERM to the main process) the failed run must
    still exit: before the Trainer shut its workers down itself, it hung at exit."""
    cuts = load_cuts(corpus / "train.jsonl.gz").subset(first=10)
    written = save_cuts(cuts, tmp_path / "train.jsonl.gz")  # audio paths relative to it
    manifest = tmp_path / "moved" / "train.jsonl.gz"
    manifest.parent.mkdir()
    written.rename(manifest)  # without its audio
    config = recipe(manifest, steps=5, checkpoint_every=100)
    config = replace(config, data=replace(config.data, num_workers=1, max_batch_seconds=10))
    path = write_recipe(config, tmp_path / "r.yaml")
    result = subprocess.run([sys.executable, "-m", "squeezer", "train", str(path), "--out",
                             str(tmp_path / "run")], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"squeezer train: error: {manifest}: no audio of a whole epoch could be read "
        "(skipped: {'missing file': 10}); check the manifest's paths"
    )


def test_ctrl_c_with_a_loader_worker_exits(corpus, tmp_path):
    """KeyboardInterrupt reaches the top uncaught, so the loader lives until interpreter exit,
    where multiprocessing would SIGTERM its worker (which ignores it) and wait forever: the
    Trainer shuts the worker down itself first."""
    manifest = first_utterances(corpus, 12, tmp_path / "train.jsonl.gz")
    config = recipe(manifest, steps=10_000, checkpoint_every=10_000)
    config = replace(config, data=replace(config.data, num_workers=1, max_batch_seconds=10))
    path = write_recipe(config, tmp_path / "r.yaml")
    command = [sys.executable, "-m", "squeezer", "train", str(path), "--out", str(tmp_path / "run")]
    # A child inherits SIGINT's disposition. A shell without job control starts a background
    # job (`make test &`, as a CI harness may) with SIGINT ignored, Python keeps it so, and
    # the child then trained on through SIGINT: two full `make test` runs failed so, while
    # the test passed from a terminal. Start the child as an interactive shell would, and
    # say what the test process had if it still fails.
    inherited = (signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, []))

    def as_from_a_shell() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])

    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=as_from_a_shell
    )
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.is_file() and metrics.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(
            f"no exit after SIGINT; test process SIGINT state: {inherited}"
        ) from None
    assert b"KeyboardInterrupt" in stderr
