"""Training curves of one or more runs as a PNG: loss, dev WER, dev CER, learning rate."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines or CI

import matplotlib.pyplot as plt

from squeezer.training.metrics import read_metrics

__all__ = ["plot_runs"]

_PANELS = (
    ("loss", "training loss (CTC, per token)"),
    ("dev_wer", "dev WER"),
    ("dev_cer", "dev CER"),
    ("lr", "LR"),
)
_X_LABELS = {"step": "optimiser step", "time_s": "training time (minutes)"}


def plot_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    labels: list[str] | None = None,
    x: Literal["step", "time_s"] = "step",
) -> Path:
    """One figure, four panels (loss, dev WER, dev CER, LR), one line per run.

    x: "step" plots against optimiser steps; "time_s" against training minutes, which is how
    models trained under one wall-clock budget compare (records without a time are skipped).
    """
    if x not in _X_LABELS:
        raise ValueError(f"x={x!r}: expected one of {sorted(_X_LABELS)}")
    labels = labels or [Path(r).name for r in run_dirs]
    scale = 1 / 60 if x == "time_s" else 1
    figure, axes = plt.subplots(1, len(_PANELS), figsize=(18, 4))
    for run_dir, label in zip(run_dirs, labels, strict=True):
        records = read_metrics(run_dir)
        for axis, (key, title) in zip(axes, _PANELS, strict=True):
            points = [(r[x] * scale, r[key]) for r in records if key in r and x in r]
            if points:
                steps, values = zip(*points, strict=True)
                dev = key.startswith("dev_")
                axis.plot(steps, values, label=label, marker="." if dev else None)
            axis.set_title(title)
            axis.set_xlabel(_X_LABELS[x])
    axes[0].set_yscale("log")
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
