"""Training checkpoints: atomic writes, keeping the last K, averaging the last K.

A checkpoint is one `torch.save` file of plain containers and tensors (model, optimiser,
scheduler, sampler position, RNG states, step; the model's settings and, for a fine-tuning run,
its `finetune` settings, so --resume rebuilds the same model), readable with
`torch.load(weights_only=True)`: loading one never runs pickled code.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from squeezer.files import replaced_atomically

__all__ = [
    "REQUIRED_KEYS",
    "Checkpoint",
    "TrainState",
    "average_model_states",
    "checkpoint_paths",
    "latest_checkpoint",
    "load_checkpoint",
    "newest_readable_checkpoint",
    "restore_rng",
    "rng_state",
    "save_checkpoint",
]

_NAME = re.compile(r"^checkpoint-(\d{9})\.pt$")
REQUIRED_KEYS = ("model", "optimizer", "scheduler", "train_state")
log = logging.getLogger("squeezer.training.checkpoints")


@dataclass
class TrainState:
    """Where the run is: restored on --resume together with model and optimiser."""

    step: int = 0  # optimiser steps taken
    epoch: int = 0
    batches_in_epoch: int = 0  # batches consumed in `epoch` (the sampler's position)
    bad_steps: int = 0  # non-finite steps skipped, in total
    bad_in_a_row: int = 0
    utterances: int = 0
    elapsed_s: float = 0.0  # training wall time before this process started
    skipped: dict[str, int] = field(default_factory=dict)  # unreadable cuts, per reason


@dataclass
class Checkpoint:
    """A checkpoint read back for --resume: where it is and what it holds."""

    path: Path
    state: dict[str, Any]


def rng_state() -> dict[str, Any]:
    """Every random generator the training process draws from, as plain containers/tensors.

    torch's (dropout, SpecAugment), CUDA's, Python's and NumPy's global generators. The data
    loader draws from none of them: its batches carry their own seeds (`SeededSampler`).
    """
    _, mt, gauss = random.getstate()
    _, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": list(mt),
        "python_gauss": gauss,
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Set the generators back to `rng_state()`'s values (older checkpoints: torch, Python)."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    random.setstate((3, tuple(state["python"]), state.get("python_gauss")))
    if "numpy" in state:
        saved = state["numpy"]
        keys = saved["keys"].numpy().astype(np.uint32)
        np.random.set_state(
            ("MT19937", keys, saved["position"], saved["has_gauss"], saved["cached"])
        )


def checkpoint_paths(directory: str | Path) -> list[Path]:
    """Complete checkpoints in `directory`, oldest step first (temp files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    paths = checkpoint_paths(directory)
    return paths[-1] if paths else None


def save_checkpoint(
    state: dict[str, Any], directory: str | Path, step: int, keep_last: int
) -> Path:
    """Write `state` as checkpoint-<step>.pt atomically, then delete all but the newest K.

    The file is written under a temporary name and renamed into place, so a crash mid-write
    leaves the previous checkpoints intact and never a truncated one under a real name.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last={keep_last} must be >= 1")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-{step:09d}.pt"
    try:
        with replaced_atomically(path) as temporary:
            torch.save(state, temporary)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
    except (OSError, RuntimeError) as error:  # a full disk surfaces as either
        reason = os.strerror(error.errno) if getattr(error, "errno", None) else str(error)
        raise RuntimeError(
            f"{path}: cannot write the checkpoint ({reason.splitlines()[0]}); the earlier "
            "checkpoints are intact"
        ) from None
    for old in checkpoint_paths(directory)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without unpickling code; a clear error names a broken file."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: an empty file, not a checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such checkpoint") from None
    except Exception as error:  # truncated zip, wrong format, disallowed globals...
        raise ValueError(f"{path}: not a readable checkpoint ({error})") from error


def newest_readable_checkpoint(
    directory: str | Path,
    map_location: str | torch.device = "cpu",
    accept: Callable[[Path, dict[str, Any]], None] | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `directory` that reads back whole, and its state; None if there
    are none at all. A truncated, empty or foreign newer file, or one that `accept` rejects
    (raising ValueError: the checkpoint of another recipe), is skipped with a warning naming
    it; if no file is usable, a one-line error (never a silent fresh start)."""
    paths = checkpoint_paths(directory)
    if not paths:
        return None
    newest_reason = ""
    for path in reversed(paths):
        try:
            state = load_checkpoint(path, map_location)
            missing = [
                key for key in REQUIRED_KEYS if not isinstance(state, dict) or key not in state
            ]
            if missing:
                raise ValueError(f"{path}: not a squeezer training checkpoint (no {missing[0]!r})")
            if accept is not None:
                accept(path, state)
            return path, state
        except ValueError as error:
            newest_reason = newest_reason or str(error)
            reason = str(error).removeprefix(f"{path}: ")
            log.warning("skipping %s: %s; resuming from an earlier checkpoint", path, reason)
    raise ValueError(
        f"{directory}: none of its {len(paths)} checkpoints is readable and fits the recipe "
        f"(the newest: {newest_reason}); move them away to start the run over"
    )


def average_model_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several model state dicts (integer buffers: the newest).

    Averaging the last few checkpoints' weights is the usual cheap ensemble of CTC recipes
    (icefall, NeMo); BatchNorm's integer step counter cannot be averaged and keeps its last value.
    """
    if not states:
        raise ValueError("no model states to average")
    keys = states[0].keys()
    for state in states[1:]:
        if state.keys() != keys:
            raise ValueError("model states to average have different parameter names")
    averaged = {}
    for key in keys:
        values = [state[key] for state in states]
        if values[0].is_floating_point():
            averaged[key] = torch.stack([v.float() for v in values]).mean(0).to(values[0].dtype)
        else:
            averaged[key] = values[-1].clone()
    return averaged
