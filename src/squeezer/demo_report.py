"""The demo's outputs: comparison tables (markdown + JSON), the paired verdict, where each model
does its work (bypass table, redundancy heatmaps), training curves, WER versus GFLOPs."""

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

from squeezer.analysis.bypass import bypass_markdown
from squeezer.analysis.redundancy import plot_redundancy
from squeezer.plots import plot_runs

__all__ = [
    "comparison_table",
    "group_table",
    "pairs_table",
    "plot_wer_vs_flops",
    "verdict",
    "write_report",
]

CER_TARGET = 0.15  # issue #17: every model below 15 % greedy test CER on unseen voices

ONE_SEED = (
    "One seed per model: the interval covers which test sentences were drawn, not the "
    "training run's own randomness (initialisation, batch order, dropout), which can move a "
    "model's CER by as much as the difference; `squeezer demo --seeds N` trains each model N "
    "times and reports the spread."
)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _label(result, results: Sequence) -> str:
    """A run's name, with its seed when some model has several."""
    several = len({r.seed for r in results}) > 1
    return f"{result.name} (seed {result.seed})" if several else result.name


def comparison_table(results: Sequence) -> str:
    """One row per trained run: size, cost, budget used, and test error rates (percent)."""
    lines = [
        "| model | params (M) | GFLOPs / 30 s | encoder audio-s/s | steps | train min | "
        "test WER greedy | test CER greedy | test WER beam | test CER beam |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        beam = r.rates.get("beam")
        beam_cells = f"{_pct(beam['wer'])} | {_pct(beam['cer'])}" if beam else "- | -"
        lines.append(
            f"| {_label(r, results)} | {r.params / 1e6:.2f} | {r.gflops_30s:.2f} | "
            f"{r.encoder_audio_s_per_s:.0f} | {r.steps} | {r.train_minutes:.1f} | "
            f"{_pct(r.rates['greedy']['wer'])} | {_pct(r.rates['greedy']['cer'])} | "
            f"{beam_cells} |"
        )
    return "\n".join(lines)


def group_table(results: Sequence) -> str:
    """Greedy CER per engine and kind of unseen test voice, one column per model (the mean over
    its seeds)."""
    names = list(dict.fromkeys(r.name for r in results))
    groups = sorted({g for r in results for g in r.groups})
    header = "| test voices | utterances | " + " | ".join(f"{n} CER" for n in names) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(names)]
    for group in groups:
        count = next(r.groups[group]["utterances"] for r in results if group in r.groups)
        cells = []
        for name in names:
            values = [
                r.groups[group]["cer"] for r in results if r.name == name and group in r.groups
            ]
            cells.append(_pct(sum(values) / len(values)) if values else "-")
        lines.append(f"| {group} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pairs_table(comparisons: Sequence) -> str:
    """One row per Squeezeformer against the Conformer: what the pair holds equal, the CER
    difference with its paired bootstrap interval, and the verdict the interval gives."""
    lines = [
        "| pair | held equal | FLOPs ratio | params ratio | CER difference (points) | "
        "95 % interval | verdict | per seed |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for c in comparisons:
        seeds = ", ".join(f"{100 * d:+.1f}" for d in c.seed_differences)
        lines.append(
            f"| {c.candidate} vs {c.baseline} | {c.kind} | {c.flops_ratio:.2f} | "
            f"{c.params_ratio:.2f} | {100 * c.cer.difference:+.1f} | "
            f"[{100 * c.cer.low:+.1f}, {100 * c.cer.high:+.1f}] | {c.cer.verdict} | {seeds} |"
        )
    return "\n".join(lines)


def verdict(results: Sequence, comparisons: Sequence = ()) -> list[str]:
    """Plain sentences: the CER target per run, and each pair's verdict from its interval."""
    lines = []
    for r in results:
        cer = r.rates["greedy"]["cer"]
        met = "meets" if cer < CER_TARGET else "misses"
        lines.append(
            f"{_label(r, results)}: test CER {_pct(cer)} % {met} the {_pct(CER_TARGET)} % target."
        )
    seeds = len({r.seed for r in results})
    steps = {_label(r, results): r.steps for r in results}
    if len(set(steps.values())) > 1:
        listed = ", ".join(f"{name} {count}" for name, count in steps.items())
        lines.append(
            f"The runs trained for different numbers of steps ({listed}; run.max_minutes ends a "
            "run early): the comparison below is not at an equal training budget."
        )
    for c in comparisons:
        word = {"better": "better than", "worse": "worse than",
                "not distinguishable": "not distinguishable from"}[c.cer.verdict]  # fmt: skip
        lines.append(
            f"{c.candidate} ({c.kind}: {c.flops_ratio:.2f}x the FLOPs, {c.params_ratio:.2f}x "
            f"the parameters of {c.baseline}) is {word} {c.baseline} on this test set: CER "
            f"{100 * c.cer.difference:+.1f} points, 95 % paired bootstrap interval "
            f"[{100 * c.cer.low:+.1f}, {100 * c.cer.high:+.1f}] over {c.cer.utterances} "
            f"utterances, {seeds} seed{'s' if seeds > 1 else ''} per model."
        )
        if seeds > 1:
            spread = [100 * d for d in c.seed_differences]
            lines.append(
                f"Seed by seed the difference ranges from {min(spread):+.1f} to "
                f"{max(spread):+.1f} points; the interval is of the seed-averaged errors."
            )
    if comparisons and seeds == 1:
        lines.append(ONE_SEED)
    return lines


def plot_wer_vs_flops(results: Sequence, out: Path) -> Path:
    """Test WER and CER (greedy) against GFLOPs for 30 s, one labelled point per run."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("wer", "cer"), strict=True):
        for r in results:
            value = 100 * r.rates["greedy"][metric]
            axis.scatter(r.gflops_30s, value, s=60)
            label = _label(r, results)
            axis.annotate(label, (r.gflops_30s, value), textcoords="offset points", xytext=(6, 4))
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


def _analysis_section(analyses: Sequence, out: Path) -> str:
    """The bypass table, recovery norms and redundancy heatmaps (written beside results.md)."""
    if not analyses:
        return ""
    parts = [
        "## Where each model does its work\n\nGreedy test CER (%) with blocks skipped (a skipped "
        "block returns its input; the half-rate branch skipped means the U-Net's recovery "
        "returns its skip connection alone). A half-rate branch that can be skipped at little "
        "cost is one the Squeezeformer did not learn to use.",
        bypass_markdown({a.name: a.bypass for a in analyses}),
    ]
    for a in analyses:
        if a.recovery is not None:
            ratio = a.recovery["branch"] / max(a.recovery["skip"], 1e-12)
            parts.append(
                f"{a.name}: at the recovery, the half-rate branch's term has a mean norm of "
                f"{a.recovery['branch']:.2f} per frame against {a.recovery['skip']:.2f} for "
                f"the skip ({ratio:.2f}x)."
            )
        if a.fit is not None:
            parts.append(
                f"{a.name}: the test transcripts have {a.fit['tokens_per_second']:.1f} tokens "
                f"per second against {a.fit['half_rate_frames_per_second']:.1f} half-rate "
                f"frames; {100 * a.fit['too_long']:.0f} % of them need more CTC frames (a "
                "token each, one more per repeat) than the half-rate blocks have, so only the "
                "full-rate blocks can align them."
            )
    entropies = {a.name: a.attention_entropy for a in analyses if a.attention_entropy}
    if entropies:
        blocks = max(len(values) for values in entropies.values())
        lines = ["| block | " + " | ".join(entropies) + " |", "|---|" + "---:|" * len(entropies)]
        for index in range(blocks):
            cells = [f"{100 * v[index]:.0f}" if index < len(v) else "-" for v in entropies.values()]
            lines.append(f"| {index} | " + " | ".join(cells) + " |")
        parts.append(
            "Attention entropy per block, % of uniform attention over the utterance (100: every "
            "query averages all frames; near 0: every query looks at one frame). A post-LN "
            "block whose attention collapses onto a few frames outputs nearly the same vector "
            "at every frame.\n\n" + "\n".join(lines)
        )
    images = []
    for a in analyses:
        for kind, report in a.redundancy.items():
            name = f"redundancy_{a.name}_{kind}.png"
            plot_redundancy(report, out / name)
            images.append(f"![{a.name}, {kind} cosine similarity]({name})")
    parts.append(
        "Cosine similarity of frames k apart after each block (paper Figure 2): raw, and centred "
        "(each utterance's mean frame subtracted, so a constant offset does not count as "
        "similarity).\n\n" + "\n".join(images)
    )
    return "\n\n".join(parts)


def _minutes_line(minutes: dict[str, float]) -> str:
    total = sum(minutes.values())
    phases = ", ".join(f"{name} {value:.1f}" for name, value in minutes.items())
    return f"This invocation took {total:.1f} minutes ({phases})."


def write_report(out: Path, outcome, command: str) -> Path:
    """Write results.md, results.json and the plots (curves by step and by training time,
    WER versus GFLOPs, redundancy heatmaps) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    results = outcome.results
    run_dirs = [Path(r.model_dir).parent for r in results]
    labels = [_label(r, results) for r in results]
    plot_runs(run_dirs, out / "curves.png", labels=labels, x="step")  # the shared budget
    plot_runs(run_dirs, out / "curves_time.png", labels=labels, x="time_s")  # what it cost
    plot_wer_vs_flops(results, out / "wer_vs_gflops.png")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    transcripts = "\n".join(
        f"- `{Path(e['file']).name}` ({e['group']})\n  - REF: {e['reference']}\n"
        f"  - HYP: {e['hypothesis']}"
        for e in outcome.examples
    )
    sections = [
        "# Demo: Conformer versus Squeezeformer on the synthetic corpus",
        f"Command: `{command}`  \nMachine: {_machine()}, torch {torch.__version__}; {date}. "
        + _minutes_line(outcome.minutes),
        comparison_table(results),
        "Greedy CER per engine and kind of unseen test voice:\n\n" + group_table(results),
    ]
    if outcome.comparisons:
        sections.append("## The paper's comparison\n\n" + pairs_table(outcome.comparisons))
    sections += [
        "\n".join(f"- {line}" for line in verdict(results, outcome.comparisons)),
        _analysis_section(outcome.analyses, out),
        "Transcribed with the better model:\n\n" + transcripts,
        "![training curves by step](curves.png)\n\n"
        "![training curves by training time](curves_time.png)\n\n"
        "![WER versus GFLOPs](wer_vs_gflops.png)",
    ]
    (out / "results.md").write_text("\n\n".join(s for s in sections if s) + "\n")
    models = []
    for r in results:
        model = asdict(r)
        model.pop("utterances")  # per-utterance counts stay in RUN/eval-test
        models.append(model)
    payload = {
        "command": command,
        "date": date,
        "minutes": outcome.minutes,
        "models": models,
        "comparisons": [
            {**asdict(c), "kind": c.kind, "verdict": c.cer.verdict} for c in outcome.comparisons
        ],
        "analyses": [
            {
                "name": a.name,
                "bypass": [asdict(row) for row in a.bypass],
                "recovery": a.recovery,
                "half_rate_fit": a.fit,
                "attention_entropy": a.attention_entropy,
                "redundancy": {k: v.to_dict() for k, v in a.redundancy.items()},
            }
            for a in outcome.analyses
        ],
        "examples": outcome.examples,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    return out / "results.md"
