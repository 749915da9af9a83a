"""Faults injected into real training runs: SIGKILL mid-epoch, SIGTERM/SIGUSR1 preemption.

A run is killed or signalled and resumed with --resume; it must end bit-identical to the same
recipe run without interruption: model, optimiser, schedule, EMA, sampler position and every
random generator (dropout, SpecAugment, speed perturbation in a DataLoader worker). Every run
here is a fresh `python -m squeezer train` process with the same environment (thread count
included), as a user's would be.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from squeezer.augment import SpecAugmentConfig
from squeezer.training.checkpoints import checkpoint_paths, load_checkpoint
from squeezer.training.metrics import read_metrics
from squeezer.training.recipe import TrainConfig
from tests.conftest import first_utterances
from tests.training.test_loop import TINY_ENCODER, recipe, write_recipe

STEPS = 12
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}


def random_recipe(manifest: Path) -> TrainConfig:
    """Every source of randomness on: dropout, SpecAugment, speed perturbation in a loader
    worker, EMA; about five batches per epoch, so most checkpoints fall mid-epoch."""
    config = recipe(manifest, steps=STEPS, checkpoint_every=3, ema_decay=0.9, keep_last=20)
    encoder = TINY_ENCODER.replace(dropout=0.1, attention_dropout=0.1)
    data = replace(config.data, max_batch_seconds=8, num_workers=1, speed_perturb=(0.9, 1.0, 1.1))
    augment = SpecAugmentConfig(freq_masks=2, freq_width=8, time_masks=2, time_width=0.05)
    return replace(config, encoder=encoder, data=data, spec_augment=augment)


@pytest.fixture(scope="module")
def subset(corpus, tmp_path_factory) -> Path:
    return first_utterances(corpus, 12, tmp_path_factory.mktemp("subset") / "train12.jsonl.gz")


@pytest.fixture(scope="module")
def recipe_path(subset, tmp_path_factory) -> Path:
    return write_recipe(random_recipe(subset), tmp_path_factory.mktemp("recipe") / "r.yaml")


def train_command(recipe_path: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "squeezer", "train", str(recipe_path), "--out", str(run_dir),
            *extra]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(recipe_path, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = subprocess.run(train_command(recipe_path, run_dir), env=ENV, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"training ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def has_checkpoint(run_dir: Path, step: int):
    return lambda: (run_dir / "checkpoints" / f"checkpoint-{step:09d}.pt").is_file()


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """The last checkpoints hold bit-identical states; the final models are identical files."""
    ours = load_checkpoint(checkpoint_paths(run_dir / "checkpoints")[-1])
    theirs = load_checkpoint(checkpoint_paths(reference / "checkpoints")[-1])
    assert ours["train_state"]["step"] == theirs["train_state"]["step"] == STEPS
    for key in ("model", "ema"):
        assert ours[key].keys() == theirs[key].keys()
        for name in ours[key]:
            assert torch.equal(ours[key][name], theirs[key][name]), f"{key}.{name} differs"
    assert_equal_nested(ours["optimizer"], theirs["optimizer"], "optimizer")
    assert ours["scheduler"] == theirs["scheduler"]
    assert_equal_nested(ours["rng"], theirs["rng"], "rng")
    progress = {k: v for k, v in ours["train_state"].items() if k != "elapsed_s"}
    assert progress == {k: v for k, v in theirs["train_state"].items() if k != "elapsed_s"}
    final = (run_dir / "model" / "model.safetensors").read_bytes()
    assert final == (reference / "model" / "model.safetensors").read_bytes()


def assert_equal_nested(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal_nested(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal_nested(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_sigkill_twice_then_resume_is_bit_identical(recipe_path, uninterrupted, tmp_path):
    """Killed right after the step-3 checkpoint (mid-epoch 0) and again after the step-9 one
    (mid-epoch 1); each time --resume restarts from the newest checkpoint on disk."""
    run_dir = tmp_path / "run"
    resumed_from = []
    for kill_after, extra in ((3, ()), (9, ("--resume",))):
        command = train_command(recipe_path, run_dir, *extra)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        process = subprocess.Popen(command, env=ENV, **quiet)
        wait_for(has_checkpoint(run_dir, kill_after), process, f"checkpoint {kill_after}")
        process.send_signal(signal.SIGKILL)
        process.wait()
        newest = load_checkpoint(checkpoint_paths(run_dir / "checkpoints")[-1])
        resumed_from.append(newest["train_state"])
    assert resumed_from[0]["batches_in_epoch"] > 0, "the first kill point is not mid-epoch"
    assert resumed_from[0]["step"] < STEPS and resumed_from[1]["step"] < STEPS
    result = subprocess.run(train_command(recipe_path, run_dir, "--resume"), env=ENV,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(run_dir, uninterrupted)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1"])
def test_preemption_checkpoints_exits_0_and_resumes_exactly(
    signal_name, recipe_path, uninterrupted, tmp_path
):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(train_command(recipe_path, run_dir), env=ENV, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    metrics = run_dir / "metrics.jsonl"
    wait_for(lambda: metrics.is_file() and '"step": 5' in metrics.read_text(), process, "step 5")
    signalled_at = max(r["step"] for r in read_metrics(run_dir) if "loss" in r)
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    message = stderr.strip().splitlines()[-1]
    stopped = int(re.search(r"stopped at step (\d+)", message).group(1))
    # The signal is honoured at the next step boundary: at most the step that was running.
    assert signalled_at <= stopped <= signalled_at + 1 < STEPS
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{stopped:09d}.pt"
    assert f"{signal_name}: stopped at step {stopped} after writing {checkpoint}" in message
    assert message.endswith(f"--out {run_dir} --resume")
    assert not (run_dir / "model").exists()  # a preempted run has no final model yet
    result = subprocess.run(train_command(recipe_path, run_dir, "--resume"), env=ENV,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(run_dir, uninterrupted)


def rank_pids(parent: int) -> dict[int, int]:
    """{rank: pid} of torchrun's worker processes (children of `parent` with RANK set)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != parent:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(entry.name)
    return found


def test_sigterm_to_one_torchrun_rank_stops_both_at_one_step(subset, tmp_path):
    """SLURM may signal any process of a job: one signalled rank stops them all, at one step,
    each exiting 0; the resumed run ends with the ranks' weights identical."""
    config = recipe(subset, steps=40, checkpoint_every=100)
    path = write_recipe(replace(config, data=replace(config.data, max_batch_seconds=10)),
                        tmp_path / "r.yaml")  # fmt: skip
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "squeezer", "train", str(path), "--out",
               str(run_dir), "--set", "run.device=cpu"]  # fmt: skip
    env = {**ENV, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)  # fmt: skip
    metrics = run_dir / "metrics.jsonl"
    wait_for(lambda: metrics.is_file() and '"step": 5' in metrics.read_text(), process, "step 5")
    pids = rank_pids(process.pid)
    assert sorted(pids) == [0, 1]
    os.kill(pids[1], signal.SIGTERM)  # rank 0, the one that writes checkpoints, is not told
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    stops = re.findall(r"rank (\d) stops at step (\d+) \((.+?)\)", stderr)
    assert sorted(rank for rank, _, _ in stops) == ["0", "1"], stderr[-3000:]
    assert len({step for _, step, _ in stops}) == 1
    step = int(stops[0][1])
    assert dict((rank, why) for rank, _, why in stops)["1"] == "SIGTERM"
    assert (run_dir / "checkpoints" / f"checkpoint-{step:09d}.pt").is_file()
    assert f"resume with: squeezer train {path} --out {run_dir} --resume" in stderr
    result = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    sync = [r for r in read_metrics(run_dir) if "rank_weight_max_abs_diff" in r][-1]
    assert sync["step"] == 40 and sync["rank_weight_max_abs_diff"] == 0.0
