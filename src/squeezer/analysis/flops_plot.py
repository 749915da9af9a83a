"""PNG plots of the FLOPs reports: components per model, the ladder, cost versus length.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so plotting is headless and
leaves matplotlib's global backend and figure registry alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from squeezer.analysis.flops import COMPONENTS
from squeezer.analysis.flops_report import LadderReport, ModelFlops
from squeezer.analysis.flops_scaling import LengthPoint

__all__ = ["plot_components", "plot_ladder", "plot_report", "plot_scaling"]

DPI = 120


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)  # attaches the Agg canvas that savefig renders on
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _stacked_bars(axes: Axes, labels: Sequence[str], reports: Sequence[ModelFlops]) -> None:
    """One bar per report, stacked by analytic component, in GFLOPs."""
    bottoms = [0.0] * len(reports)
    positions = range(len(reports))
    for component in COMPONENTS:
        heights = [report.analytic.components[component] / 1e9 for report in reports]
        axes.bar(positions, heights, bottom=bottoms, label=component.replace("_", " "))
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    axes.set_xticks(list(positions), labels, rotation=30, ha="right")
    axes.set_ylabel("GFLOPs")


def plot_components(reports: Sequence[ModelFlops], path: str | Path) -> Path:
    """Stacked bar of analytic GFLOPs by component per model, with PAPER.md's figures as marks."""
    if not reports:
        raise ValueError("no models to plot")
    figure = Figure(figsize=(max(6.0, 1.1 * len(reports) + 3), 5))
    axes = figure.add_subplot()
    _stacked_bars(axes, [report.name for report in reports], reports)
    for field, marker, label in (("table3", "v", "paper Table 3"), ("nemo", "o", "NeMo counter")):
        points = [
            (i, getattr(report.paper, field))
            for i, report in enumerate(reports)
            if report.paper and getattr(report.paper, field) is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.scatter(xs, ys, marker=marker, color="black", zorder=3, label=label)
    axes.set_title(f"FLOPs by component, {reports[0].seconds:g} s input")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, path)


def plot_ladder(ladder: LadderReport, path: str | Path) -> Path:
    """Stacked bar per ablation rung, each labelled with its change from the rung before."""
    figure = Figure(figsize=(9, 5))
    axes = figure.add_subplot()
    reports = [step.flops for step in ladder.steps]
    _stacked_bars(axes, [step.rung for step in ladder.steps], reports)
    for index, step in enumerate(ladder.steps[1:], start=1):
        top = step.flops.analytic.total / 1e9
        axes.annotate(f"{step.delta_percent:+.1f}%", (index, top), ha="center", va="bottom")
    axes.set_title(f"Ablation ladder, Conformer-M to Squeezeformer-SM, {ladder.seconds:g} s input")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, path)


def plot_scaling(points: Sequence[LengthPoint], path: str | Path) -> Path:
    """Log-log GFLOPs and CPU forward time against input length, one line per model."""
    if not points:
        raise ValueError("no points to plot")
    names = list(dict.fromkeys(point.name for point in points))
    timed = all(point.forward_s is not None for point in points)
    figure = Figure(figsize=(11 if timed else 6, 4.5))
    panels = [("gflops", "GFLOPs (analytic)")]
    if timed:
        threads = points[0].threads
        panels.append(("forward_s", f"CPU forward, s ({threads} thread{'s' * (threads != 1)})"))
    for column, (field, label) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), column)
        for name in names:
            mine = [point for point in points if point.name == name]
            values = [getattr(point, field) for point in mine]
            axes.plot([p.seconds for p in mine], values, marker="o", label=name)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("input length, s")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.suptitle("Cost versus input length")
    return _save(figure, path)


def plot_report(
    path: str | Path,
    reports: Sequence[ModelFlops] = (),
    ladder: LadderReport | None = None,
    scaling: Sequence[LengthPoint] = (),
) -> list[Path]:
    """Every plot the given results allow; `path` itself when there is one, else one each.

    With several, "out.png" becomes "out-components.png", "out-ladder.png", "out-scaling.png".
    """
    plots = []
    if reports:
        plots.append(("components", lambda target: plot_components(reports, target)))
    if ladder is not None:
        plots.append(("ladder", lambda target: plot_ladder(ladder, target)))
    if scaling:
        plots.append(("scaling", lambda target: plot_scaling(scaling, target)))
    if not plots:
        raise ValueError("nothing to plot")
    path = Path(path)
    if len(plots) == 1:
        return [plots[0][1](path)]
    return [draw(path.with_name(f"{path.stem}-{kind}{path.suffix}")) for kind, draw in plots]
