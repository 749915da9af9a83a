"""The demo's outputs: comparison table (markdown + JSON), training curves, WER versus GFLOPs."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt
import torch

from squeezer.plots import plot_runs

__all__ = ["comparison_table", "plot_wer_vs_flops", "verdict", "write_report"]

CER_TARGET = 0.15  # issue #6: both models below 15 % test CER on unseen voices


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def comparison_table(results: Sequence) -> str:
    """One row per model: size, cost, budget used, and test error rates (percent)."""
    lines = [
        "| model | params (M) | GFLOPs / 30 s | encoder audio-s/s | steps | train min | "
        "test WER greedy | test CER greedy | test WER beam | test CER beam |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        beam = r.rates.get("beam")
        beam_cells = f"{_pct(beam['wer'])} | {_pct(beam['cer'])}" if beam else "- | -"
        lines.append(
            f"| {r.name} | {r.params / 1e6:.2f} | {r.gflops_30s:.2f} | "
            f"{r.encoder_audio_s_per_s:.0f} | {r.steps} | {r.train_minutes:.1f} | "
            f"{_pct(r.rates['greedy']['wer'])} | {_pct(r.rates['greedy']['cer'])} | "
            f"{beam_cells} |"
        )
    return "\n".join(lines)


def group_table(results: Sequence) -> str:
    """Greedy CER per kind of unseen test voice, one column per model."""
    groups = sorted({g for r in results for g in r.groups})
    header = "| test voices | utterances | " + " | ".join(f"{r.name} CER" for r in results) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(results)]
    for group in groups:
        count = next(r.groups[group]["utterances"] for r in results if group in r.groups)
        cells = [_pct(r.groups[group]["cer"]) if group in r.groups else "-" for r in results]
        lines.append(f"| {group} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(results: Sequence) -> list[str]:
    """Plain sentences: the CER target, and whether the paper's claim held on this data."""
    lines = []
    for r in results:
        cer = r.rates["greedy"]["cer"]
        met = "meets" if cer < CER_TARGET else "misses"
        lines.append(f"{r.name}: test CER {_pct(cer)} % {met} the {_pct(CER_TARGET)} % target.")
    by_name = {r.name.lower(): r for r in results}
    squeeze = next((r for n, r in by_name.items() if "squeezeformer" in n), None)
    conform = next((r for n, r in by_name.items() if "conformer" in n), None)
    if squeeze is not None and conform is not None:
        fewer = squeeze.gflops_30s < conform.gflops_30s
        s_cer, c_cer = squeeze.rates["greedy"]["cer"], conform.rates["greedy"]["cer"]
        s_wer, c_wer = squeeze.rates["greedy"]["wer"], conform.rates["greedy"]["wer"]
        better = s_wer < c_wer and s_cer < c_cer
        flops_ratio = squeeze.gflops_30s / conform.gflops_30s
        claim = "holds" if (fewer and better) else "does not hold"
        lines.append(
            f"The paper's claim (lower WER at fewer FLOPs) {claim} here: Squeezeformer "
            f"{_pct(s_wer)} % WER / {_pct(s_cer)} % CER at {squeeze.gflops_30s:.2f} GFLOPs versus "
            f"Conformer {_pct(c_wer)} % / {_pct(c_cer)} % at {conform.gflops_30s:.2f} GFLOPs "
            f"({flops_ratio:.2f}x the FLOPs), {_budget(squeeze, conform)}."
        )
    return lines


def _budget(squeeze, conform) -> str:
    """How much training each got: the same steps (and their minutes) or different ones."""
    minutes = f"{squeeze.train_minutes:.1f} versus {conform.train_minutes:.1f} training minutes"
    if squeeze.steps == conform.steps:
        return f"both after {squeeze.steps} steps ({minutes})"
    return f"after {squeeze.steps} versus {conform.steps} steps ({minutes})"


def plot_wer_vs_flops(results: Sequence, out: Path) -> Path:
    """Test WER and CER (greedy) against GFLOPs for 30 s, one labelled point per model."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("wer", "cer"), strict=True):
        for r in results:
            value = 100 * r.rates["greedy"][metric]
            axis.scatter(r.gflops_30s, value, s=60)
            axis.annotate(r.name, (r.gflops_30s, value), textcoords="offset points", xytext=(6, 4))
        axis.set_xlabel("GFLOPs for 30 s of audio")
        axis.set_ylabel(f"test {metric.upper()} (%), greedy")
        axis.grid(alpha=0.3)
        axis.margins(0.25)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def write_report(out: Path, results: Sequence, examples: list[dict], command: str) -> Path:
    """Write results.md, results.json and the plots (curves by step and by training time,
    WER versus GFLOPs) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    run_dirs = [Path(r.model_dir).parent for r in results]
    labels = [r.name for r in results]
    plot_runs(run_dirs, out / "curves.png", labels=labels, x="step")  # the shared budget
    plot_runs(run_dirs, out / "curves_time.png", labels=labels, x="time_s")  # what it cost
    plot_wer_vs_flops(results, out / "wer_vs_gflops.png")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    transcripts = "\n".join(
        f"- `{Path(e['file']).name}` ({e['group']})\n  - REF: {e['reference']}\n"
        f"  - HYP: {e['hypothesis']}"
        for e in examples
    )
    text = "\n\n".join(
        [
            "# Demo: Conformer versus Squeezeformer on the synthetic corpus",
            f"Command: `{command}`  \nMachine: {_machine()}, torch {torch.__version__}; {date}.",
            comparison_table(results),
            "Greedy CER per kind of unseen test voice:\n\n" + group_table(results),
            "\n".join(f"- {line}" for line in verdict(results)),
            "Transcribed with the better model:\n\n" + transcripts,
            "![training curves by step](curves.png)\n\n"
            "![training curves by training time](curves_time.png)\n\n"
            "![WER versus GFLOPs](wer_vs_gflops.png)",
        ]
    )
    (out / "results.md").write_text(text + "\n")
    payload = {"command": command, "date": date, "models": [asdict(r) for r in results],
               "examples": examples}  # fmt: skip
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    return out / "results.md"
