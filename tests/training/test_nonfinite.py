"""Non-finite steps, injected: a NaN loss, a NaN gradient, a run of them, and under 2 ranks.

The loss function of the training loop is wrapped so that one chosen call returns a NaN loss,
or a finite loss whose gradient is NaN (d/dx sqrt(x - x) at 0 is 0 * inf). The step must be
skipped and counted in metrics.jsonl, with weights, optimiser state, schedule and EMA exactly as
before it; `run.max_bad_steps` in a row stops the run with a one-line message.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import squeezer.training.step as step
from squeezer.cli import main
from squeezer.training import Trainer
from squeezer.training.metrics import read_metrics
from tests.conftest import first_utterances
from tests.training.test_loop import recipe, write_recipe

HELPER = Path(__file__).with_name("nonfinite_ddp.py")


@pytest.fixture(scope="module")
def subset(corpus, tmp_path_factory) -> Path:
    return first_utterances(corpus, 12, tmp_path_factory.mktemp("subset") / "train12.jsonl.gz")


def poison(loss: torch.Tensor, model: torch.nn.Module, kind: str) -> torch.Tensor:
    """A NaN loss, or the same loss with a NaN gradient on the model's first parameter."""
    if kind == "loss":
        return loss * float("nan")
    first = next(p for p in model.parameters() if p.requires_grad).flatten()[0]
    return loss + torch.sqrt(first - first)  # value + 0, gradient 0 * inf = NaN


def snapshot(trainer: Trainer) -> dict:
    return copy.deepcopy({"model": trainer.model.state_dict(), "ema": trainer.ema.state_dict(),
                          "optimizer": trainer.optimizer.state_dict(),
                          "scheduler": trainer.scheduler.state_dict()})  # fmt: skip


def assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


@pytest.mark.parametrize(("kind", "accumulate"), [("loss", 1), ("loss", 2), ("gradient", 1)])
def test_a_non_finite_step_is_skipped_counted_and_changes_nothing(
    kind, accumulate, subset, tmp_path, monkeypatch
):
    config = recipe(subset, steps=6, checkpoint_every=100, ema_decay=0.9)
    config = replace(config, data=replace(config.data, max_batch_seconds=8),
                     optim=replace(config.optim, accumulate=accumulate))  # fmt: skip
    trainer = Trainer(config, tmp_path / "run", resume=False)
    real_loss, calls, states = step.ctc_loss, [], {}
    poisoned = 3 * accumulate  # the last micro-batch of the third step

    def injected(model, batch, augment):
        calls.append(len(calls) + 1)
        if calls[-1] == poisoned - (accumulate - 1):  # the start of the step that is hit
            states["before"] = snapshot(trainer)
        if calls[-1] == poisoned + 1:  # the next micro-batch: nothing may have moved
            states["after"] = snapshot(trainer)
        loss = real_loss(model, batch, augment)
        return poison(loss, model, kind) if calls[-1] == poisoned else loss

    monkeypatch.setattr(step, "ctc_loss", injected)
    trainer.fit()
    assert_same(states["before"], states["after"], "state")
    skips = [r for r in read_metrics(tmp_path / "run") if "skipped_step" in r]
    reason = "non-finite loss" if kind == "loss" else "non-finite gradient"
    assert [(r["step"], r["skipped_step"], r["bad_steps"]) for r in skips] == [(2, reason, 1)]
    assert trainer.state.step == 6 and trainer.state.bad_steps == 1
    assert trainer.state.bad_in_a_row == 0  # a good step resets the run of bad ones
    summary = [r for r in read_metrics(tmp_path / "run") if r.get("summary") == "data"]
    assert summary[-1]["bad_steps"] == 1


def test_max_bad_steps_in_a_row_stops_the_run_in_one_line(subset, tmp_path, monkeypatch, capsys):
    path = write_recipe(recipe(subset, steps=20, checkpoint_every=100), tmp_path / "r.yaml")
    real_loss, calls = step.ctc_loss, []

    def injected(model, batch, augment):
        calls.append(1)
        loss = real_loss(model, batch, augment)
        return (
            poison(loss, model, "gradient" if len(calls) % 2 else "loss")
            if len(calls) > 2
            else loss
        )

    monkeypatch.setattr(step, "ctc_loss", injected)
    argv = ["train", str(path), "--out", str(tmp_path / "run"), "--set", "run.max_bad_steps=4"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (
        "squeezer train: error: 4 non-finite losses or gradients in a row at step 2: stopping "
        "(lower optim.peak_lr or check the data)"
    )
    skips = [r["skipped_step"] for r in read_metrics(tmp_path / "run") if "skipped_step" in r]
    assert skips == ["non-finite gradient", "non-finite loss"] * 2


def test_two_gloo_ranks_skip_the_same_steps(subset, tmp_path):
    """Rank 1 alone gets a NaN loss at its 3rd batch, rank 0 alone a NaN gradient at its 6th:
    both ranks skip both steps (the loss by agreement, the gradient through DDP's all-reduce),
    so their weights stay identical."""
    path = write_recipe(recipe(subset, steps=8, checkpoint_every=100), tmp_path / "r.yaml")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(HELPER), "train", str(path), "--out",
               str(tmp_path / "run"), "--set", "data.max_batch_seconds=10",
               "--set", "run.device=cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_metrics(tmp_path / "run")
    skips = [(r["step"], r["skipped_step"]) for r in records if "skipped_step" in r]
    assert skips == [(2, "non-finite loss"), (4, "non-finite gradient")]
    sync = [r for r in records if "rank_weight_max_abs_diff" in r][-1]
    assert sync["step"] == 8 and sync["rank_bad_steps"] == [2, 2]
    assert sync["rank_weight_max_abs_diff"] == 0.0
