"""Training curves of one or more runs as a PNG: loss, dev WER, learning rate."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines or CI

import matplotlib.pyplot as plt

from squeezer.metrics_log import read_metrics

__all__ = ["plot_runs"]

_PANELS = (("loss", "training loss (CTC, per token)"), ("dev_wer", "dev WER"), ("lr", "LR"))


def plot_runs(run_dirs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> Path:
    """One figure, three panels (loss, dev WER, LR), one line per run."""
    labels = labels or [Path(r).name for r in run_dirs]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for run_dir, label in zip(run_dirs, labels, strict=True):
        records = read_metrics(run_dir)
        for axis, (key, title) in zip(axes, _PANELS, strict=True):
            points = [(r["step"], r[key]) for r in records if key in r]
            if points:
                steps, values = zip(*points, strict=True)
                axis.plot(steps, values, label=label, marker="." if key == "dev_wer" else None)
            axis.set_title(title)
            axis.set_xlabel("optimiser step")
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
