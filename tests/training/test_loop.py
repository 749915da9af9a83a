"""The CTC recipe end to end on the synthetic corpus (CPU, no network).

These are the slowest tests of the suite (about a minute each on 2 cores): they train real,
tiny models. Speed itself is never asserted here; `make bench` measures it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from squeezer.cli import main
from squeezer.config import EncoderConfig
from squeezer.data.manifests import load_cuts
from squeezer.evaluate import evaluate
from squeezer.loading import load_model
from squeezer.structured import to_mapping
from squeezer.training import train
from squeezer.training.checkpoints import load_checkpoint
from squeezer.training.metrics import read_metrics
from squeezer.training.recipe import (
    DataConfig,
    OptimConfig,
    RunConfig,
    TokenizerConfig,
    TrainConfig,
)
from squeezer.training.schedule import NoamHoldAnnealing
from tests.conftest import first_utterances

TINY_ENCODER = EncoderConfig(
    d_model=64, num_layers=4, num_heads=4, conv_kernel_size=15, dropout=0.0,
    attention_dropout=0.0, time_reduce_idx=1, time_recover_idx=3, subsampling_channels=16,
)  # fmt: skip


@pytest.fixture(scope="module")
def subset(corpus, tmp_path_factory) -> Path:
    """Twelve training utterances: small enough to memorise in a CI-friendly time."""
    return first_utterances(corpus, 12, tmp_path_factory.mktemp("subset") / "train12.jsonl.gz")


def recipe(train_manifest: Path, steps: int, **run) -> TrainConfig:
    return TrainConfig(
        model=None,
        encoder=TINY_ENCODER,
        spec_augment=None,
        tokenizer=TokenizerConfig(kind="char"),
        data=DataConfig(train=str(train_manifest), max_batch_seconds=60, num_workers=0),
        optim=OptimConfig(peak_lr=3e-3, warmup_steps=20, hold_steps=10_000, weight_decay=0.0),
        run=RunConfig(epochs=100_000, max_steps=steps, log_every=5, **run),
    )


def write_recipe(config: TrainConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(to_mapping(config), sort_keys=False))
    return path


def test_tiny_model_overfits_its_training_set(subset, tmp_path):
    model_dir = train(recipe(subset, steps=200, checkpoint_every=100), tmp_path / "run")
    model = load_model(model_dir)
    assert sum(p.numel() for p in model.parameters()) < 600_000
    rates = evaluate(model, load_cuts(subset)).rates["greedy"]
    print(f"\ntraining-set CER {rates.cer:.4f}, WER {rates.wer:.4f}")
    assert rates.cer < 0.05


def squeezer_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "squeezer", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


def test_train_evaluate_transcribe_from_the_cli(corpus, subset, tmp_path):
    path = write_recipe(
        recipe(subset, steps=10, checkpoint_every=5, average_last=2), tmp_path / "r.yaml"
    )
    run = squeezer_cli("train", str(path), "--out", str(tmp_path / "run"), "--set", "run.seed=3")
    assert run.returncode == 0, run.stderr
    model_dir = tmp_path / "run" / "model"
    assert {p.name for p in model_dir.iterdir()} >= {"config.yaml", "model.safetensors"}
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["run"]["seed"] == 3
    result = squeezer_cli(
        "evaluate", str(model_dir), str(corpus / "test.jsonl.gz"), "--beam", "4",
        "--out", str(tmp_path / "eval"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["utterances"] == 10 and summary["beam"]["cer"] >= 0
    rows = (tmp_path / "eval" / "hypotheses.jsonl").read_text().splitlines()
    assert len(rows) == 10 and "hypothesis" in json.loads(rows[0])
    audio = sorted((corpus / "audio" / "test").glob("*.flac"))[:2]
    result = squeezer_cli("transcribe", str(model_dir), *map(str, audio), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(a) for a in audio]
    assert all(line["real_time_factor"] > 0 for line in lines)
    plot = squeezer_cli("plot", str(tmp_path / "run"))
    assert plot.returncode == 0 and (tmp_path / "run" / "curves.png").stat().st_size > 1000


def test_bad_recipe_keys_and_values_are_one_line_errors(subset, tmp_path):
    path = write_recipe(recipe(subset, steps=1), tmp_path / "r.yaml")
    result = squeezer_cli("train", str(path), "--out", str(tmp_path / "x"), "--set", "optim.lr=1")
    assert result.returncode == 2 and "optim.lr" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sigkill_mid_run_then_resume_continues_step_and_lr(subset, tmp_path):
    steps, every = 30, 10
    path = write_recipe(recipe(subset, steps=steps, checkpoint_every=every), tmp_path / "r.yaml")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "squeezer", "train", str(path), "--out", str(run_dir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = run_dir / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not list(checkpoints.glob("checkpoint-*.pt")):
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(checkpoints.glob("checkpoint-*.pt")), "no checkpoint before the kill"
    resumed = squeezer_cli("train", str(path), "--out", str(run_dir), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    records = [r for r in read_metrics(run_dir) if "lr" in r]
    assert records[-1]["step"] == steps
    schedule = NoamHoldAnnealing(20, 10_000)
    for record in records:  # steps logged before and after the kill follow one schedule
        assert record["lr"] == pytest.approx(3e-3 * schedule.factor(record["step"]))
    assert (run_dir / "model" / "model.safetensors").is_file()


def test_resume_falls_back_past_a_truncated_checkpoint(subset, tmp_path, capsys):
    """A full disk or a crash left the newest checkpoint truncated: --resume names it, resumes
    from the one before and trains to the end; with none readable it stops in one line."""
    path = write_recipe(recipe(subset, steps=6, checkpoint_every=3), tmp_path / "r.yaml")
    run_dir = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run_dir), "--set", "run.max_steps=6"]) == 0
    newest = run_dir / "checkpoints" / "checkpoint-000000006.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    capsys.readouterr()
    argv = ["train", str(path), "--out", str(run_dir), "--resume", "--set", "run.max_steps=8"]
    assert main(argv) == 0
    logged = [r["step"] for r in read_metrics(run_dir) if "loss" in r]
    assert logged == [1, 5, 5]  # log_every=5: step 5 ran again, from the step-3 checkpoint
    assert load_checkpoint(newest)["train_state"]["step"] == 6  # written whole this time
    for checkpoint in (run_dir / "checkpoints").glob("checkpoint-*.pt"):
        checkpoint.write_bytes(b"")
    capsys.readouterr()
    assert main([*argv[:-1], "run.max_steps=9"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("squeezer train: error:")
    assert "none of its 3 checkpoints is readable" in error  # one line: the last of stderr


@pytest.mark.parametrize("recorded_settings", [True, False])
def test_resume_skips_a_valid_checkpoint_of_another_recipe(
    recorded_settings, subset, tmp_path, caplog
):
    """The newest checkpoint is whole but was written by a run of another architecture (one
    that recorded its model settings, or an older one that did not): --resume names it and
    continues from the run's own checkpoint before it."""
    path = write_recipe(recipe(subset, steps=3, checkpoint_every=3), tmp_path / "r.yaml")
    run_dir, other_dir = tmp_path / "run", tmp_path / "other"
    assert main(["train", str(path), "--out", str(run_dir)]) == 0
    other = write_recipe(recipe(subset, steps=4, checkpoint_every=4), tmp_path / "other.yaml")
    assert main(["train", str(other), "--out", str(other_dir), "--set", "encoder.d_model=32"]) == 0
    foreign = load_checkpoint(other_dir / "checkpoints" / "checkpoint-000000004.pt")
    if not recorded_settings:
        del foreign["settings"]
    intruder = run_dir / "checkpoints" / "checkpoint-000000004.pt"
    torch.save(foreign, intruder)
    caplog.clear()
    caplog.set_level(logging.INFO)
    assert main(["train", str(path), "--out", str(run_dir), "--resume",
                 "--set", "run.max_steps=5"]) == 0  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith(f"skipping {intruder}: ") for m in warnings), warnings
    assert any("resumed from checkpoint-000000003.pt at step 3" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert (
        load_checkpoint(run_dir / "checkpoints" / "checkpoint-000000005.pt")["settings"]
        == (load_checkpoint(run_dir / "checkpoints" / "checkpoint-000000003.pt")["settings"])
    )


def test_two_gloo_processes_stay_in_sync(subset, tmp_path):
    path = write_recipe(recipe(subset, steps=4, checkpoint_every=100), tmp_path / "r.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "squeezer", "train", str(path), "--out", str(tmp_path / "run"),
        "--set", "data.max_batch_seconds=20", "--set", "run.device=cpu",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    sync = [r for r in read_metrics(tmp_path / "run") if "rank_weight_max_abs_diff" in r]
    assert sync and sync[-1]["ranks"] == 2
    assert sync[-1]["rank_weight_max_abs_diff"] == 0.0
    assert sync[-1]["step"] == 4
