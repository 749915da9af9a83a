"""The demo's trainings: each run reused when finished, resumed when interrupted, refused when
its folder holds another recipe; several at once on the CPU's cores.

Side by side, each training is a `squeezer train` child process on cpu_count // parallel
threads, logging into RUN/train.log. Two 1-thread trainings on 2 cores did 1.26x the steps per
second of the same two trained one after the other on 2 threads (80 steps of the demo's
Conformer and Squeezeformer, docs/demo.md), and both models then train under the same
conditions. One child failing stops the others with SIGTERM, which makes each write a
checkpoint first, so a rerun of the demo resumes all of them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from squeezer.structured import to_mapping
from squeezer.training import train
from squeezer.training.metrics import read_metrics
from squeezer.training.recipe import TrainConfig

__all__ = ["DemoRun", "check_run_dir", "train_runs"]

log = logging.getLogger(__name__)

POLL_S = 2.0
PROGRESS_EVERY_S = 60.0


@dataclass(frozen=True)
class DemoRun:
    """One training of the demo: a recipe's name, its seed offset, the resolved recipe."""

    name: str
    seed: int
    config: TrainConfig
    run_dir: Path


def _recorded(config: TrainConfig) -> dict:
    """The recipe as its run folder's config.yaml records it."""
    return yaml.safe_load(yaml.safe_dump(to_mapping(config), sort_keys=False))


def check_run_dir(config: TrainConfig, run_dir: Path) -> None:
    """ValueError if `run_dir` holds a run of a different recipe (never reused silently)."""
    config_path = run_dir / "config.yaml"
    if config_path.is_file() and yaml.safe_load(config_path.read_text()) != _recorded(config):
        raise ValueError(
            f"{run_dir} holds a run of a different recipe; delete it or choose another --out"
        )


def _finished(run: DemoRun) -> Path | None:
    model_dir = run.run_dir / "model"
    return model_dir if (model_dir / "model.safetensors").is_file() else None


def _has_checkpoints(run_dir: Path) -> bool:
    folder = run_dir / "checkpoints"
    return folder.is_dir() and any(folder.iterdir())


def train_model(config: TrainConfig, run_dir: Path) -> Path:
    """Train into `run_dir` in this process, or resume it, or reuse its finished model."""
    check_run_dir(config, run_dir)
    if (run_dir / "model" / "model.safetensors").is_file():
        log.info("reusing the finished model in %s", run_dir / "model")
        return run_dir / "model"
    return train(config, run_dir, resume=_has_checkpoints(run_dir))


def train_runs(runs: list[DemoRun], parallel: int | None, cores: int) -> dict[Path, Path]:
    """Train every run; run folder -> model folder. `parallel` trainings at once (None: as
    many as runs and cores allow); 1 trains in this process, one after the other."""
    todo = [run for run in runs if _finished(run) is None]
    for run in runs:
        if run not in todo:
            log.info("reusing the finished model in %s", run.run_dir / "model")
    parallel = min(len(todo), cores) if parallel is None else parallel
    if parallel <= 1 or len(todo) <= 1:
        for run in todo:
            print(f"\n== training {run.run_dir.name} ({run.run_dir}) ==")
            train_model(run.config, run.run_dir)
    else:
        _side_by_side(todo, parallel, max(1, cores // parallel))
    return {run.run_dir: run.run_dir / "model" for run in runs}


def _launch(run: DemoRun, threads: int) -> subprocess.Popen:
    """`squeezer train` of the run's resolved recipe as a child on `threads` threads."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    recipe = run.run_dir / "demo-recipe.yaml"
    run.config.to_yaml(recipe)
    command = [sys.executable, "-m", "squeezer", "train", str(recipe), "--out", str(run.run_dir)]
    if _has_checkpoints(run.run_dir):
        command.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(run.run_dir / "train.log", "ab") as log_file:
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].split("\r")[-1].strip() if lines else "(empty log)"


def _step(run: DemoRun) -> int:
    steps = [r["step"] for r in read_metrics(run.run_dir) if "step" in r]
    return max(steps, default=0)


def _side_by_side(runs: list[DemoRun], parallel: int, threads: int) -> None:
    """Up to `parallel` children at a time; the first failure stops the others (they
    checkpoint on SIGTERM) and raises one line naming the failed run's log."""
    waiting, active = list(runs), {}
    print(f"\n== training {len(runs)} runs, {parallel} at a time on {threads} thread(s) each; "
          "logs in RUN/train.log ==")  # fmt: skip
    last_report = time.monotonic()
    try:
        while waiting or active:
            while waiting and len(active) < parallel:
                run = waiting.pop(0)
                print(f"training {run.run_dir.name} ({run.run_dir})")
                active[run] = _launch(run, threads)
            time.sleep(POLL_S)
            for run, process in list(active.items()):
                code = process.poll()
                if code is None:
                    continue
                del active[run]
                if code != 0 or _finished(run) is None:
                    raise RuntimeError(
                        f"training {run.run_dir.name} failed (exit {code}): "
                        f"{_last_line(run.run_dir / 'train.log')} (log: {run.run_dir}/train.log)"
                    )
                print(f"{run.run_dir.name}: finished at step {_step(run)}")
            if time.monotonic() - last_report >= PROGRESS_EVERY_S and active:
                last_report = time.monotonic()
                total = {run: run.config.run.max_steps for run in active}
                print("  ".join(f"{run.run_dir.name} step {_step(run)}/{total[run] or '?'}"
                                for run in active))  # fmt: skip
    finally:
        for process in active.values():  # a failure or Ctrl-C: checkpoint, then stop
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in active.values():
            process.wait()
