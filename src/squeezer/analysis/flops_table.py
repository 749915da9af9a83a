"""Markdown tables and JSON for the FLOPs reports of `flops_report`.

Every table is GitHub markdown; a `command` argument adds the line that reproduces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from squeezer.analysis.flops import COMPONENTS, ELEMENTWISE
from squeezer.analysis.flops_measured import sdpa_share
from squeezer.analysis.flops_report import LadderReport, ModelFlops
from squeezer.analysis.flops_scaling import LengthPoint

__all__ = [
    "format_blocks",
    "format_components",
    "format_ladder",
    "format_scaling",
    "format_table",
    "to_json",
]

DASH = "—"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(row) for row in rows)]


def _g(flops: float) -> str:
    return f"{flops / 1e9:.2f}"


def _ratio(ours: float, paper: float | None) -> tuple[str, str]:
    if paper is None:
        return DASH, DASH
    return f"{paper:.1f}", f"{ours / paper:.3f}"


def _footer(command: str | None) -> list[str]:
    return ["", f"Command: `{command}`"] if command else []


def format_table(reports: Sequence[ModelFlops], command: str | None = None) -> str:
    """Params and GFLOPs per model: ours (analytic, measured) beside PAPER.md, with ratios.

    "ours" in a ratio is the analytic matmul/conv count; against the Zipformer column (which
    measured the encoder only) it leaves the CTC head out. "T-position" is our count with the
    position branch sized like the content branch (`ModelFlops.square_position_gflops`).
    """
    if not reports:
        raise ValueError("no models to format")
    header = [
        "model", "params (M)", "NeMo params (M)", "GFLOPs analytic", "+ elementwise",
        "GFLOPs measured", "Table 3", "ours/T3", "T-position/T3", "Zipformer", "ours/Zip",
        "NeMo counter", "ours/NeMo",
    ]  # fmt: skip
    rows = []
    for report in reports:
        paper = report.paper
        nemo_params = f"{paper.params_m:.2f}" if paper and paper.params_m else DASH
        measured = _g(report.measured.total) if report.measured else DASH
        rows.append(
            [
                report.name,
                f"{report.params / 1e6:.2f}",
                nemo_params,
                f"{report.gflops:.2f}",
                _g(report.analytic.components[ELEMENTWISE]),
                measured,
                *_ratio(report.gflops, paper.table3 if paper else None),
                _ratio(report.square_position_gflops, paper.table3 if paper else None)[1],
                *_ratio(report.encoder_gflops, paper.zipformer if paper else None),
                *_ratio(report.gflops, paper.nemo if paper else None),
            ]
        )
    first = reports[0]
    lines = [
        f"{first.seconds:g} s input ({first.analytic.frames} feature frames), one utterance, "
        "multiply-add = 2 FLOPs, vocabulary 128 + blank.",
        "",
        *_table(header, rows),
        *_footer(command),
    ]
    return "\n".join(lines)


def format_components(reports: Sequence[ModelFlops], command: str | None = None) -> str:
    """Analytic GFLOPs per component (and its share of the matmul/conv total) per model."""
    header = ["model", *COMPONENTS, "SDPA in measured"]
    rows = []
    for report in reports:
        components = report.analytic.components
        total = report.analytic.matmul_total
        cells = [
            f"{_g(components[name])} ({100 * components[name] / total:.0f}%)" for name in COMPONENTS
        ]
        sdpa = _g(sdpa_share(report.measured)) if report.measured else DASH
        rows.append([report.name, *cells, sdpa])
    return "\n".join([*_table(header, rows), *_footer(command)])


def format_blocks(report: ModelFlops) -> str:
    """Analytic GFLOPs per block and component for one model (the U-Net's half rate shows)."""
    blocks = report.analytic.blocks
    names = list(blocks[0])
    header = ["block", "frames", *names, "total"]
    rows = [
        [str(index), str(frames), *(_g(block[name]) for name in names), _g(sum(block.values()))]
        for index, (block, frames) in enumerate(
            zip(blocks, report.analytic.block_frames, strict=True)
        )
    ]
    return "\n".join(
        [f"Per block, {report.name}, {report.seconds:g} s:", "", *_table(header, rows)]
    )


def format_ladder(ladder: LadderReport, command: str | None = None) -> str:
    """The ablation ladder: params, GFLOPs and the change per rung, then the paper's claims."""
    header = ["rung", "change", "params (M)", "Δ params (M)", "GFLOPs", "Δ GFLOPs", "Δ %"]
    header.append("subsampling share")
    rows = []
    for step in ladder.steps:
        report = step.flops
        share = 100 * report.analytic.components["subsampling"] / report.analytic.matmul_total
        first = step is ladder.steps[0]
        rows.append(
            [
                step.rung,
                step.change,
                f"{report.params / 1e6:.2f}",
                DASH if first else f"{step.delta_params / 1e6:+.2f}",
                f"{report.gflops:.2f}",
                DASH if first else f"{step.delta_gflops:+.2f}",
                DASH if first else f"{step.delta_percent:+.1f}%",
                f"{share:.1f}%",
            ]
        )
    claims = [
        f"- Temporal U-Net: {ladder.unet_cut_percent:+.1f}% FLOPs (paper: about -20%).",
        f"- Subsampling share of conformer-m: {ladder.subsampling_share_percent:.1f}% "
        "(paper: up to 28%).",
        f"- Depthwise-separable subsampling: {ladder.depthwise_cut_percent:+.1f}% of the model, "
        f"{ladder.depthwise_subsampling_cut_percent:+.1f}% of the front, "
        f"{ladder.depthwise_cut_of_baseline_percent:+.1f}% of conformer-m (paper: about -22%).",
        f"- Conformer-M -> Squeezeformer-SM: {ladder.total_cut_percent:+.1f}%.",
    ]
    lines = [
        f"{ladder.seconds:g} s input, analytic matmul/conv GFLOPs (= FlopCounterMode's count).",
        "",
        *_table(header, rows),
        "",
        *claims,
        *_footer(command),
    ]
    return "\n".join(lines)


def _scaling_row(seconds: float, row: Sequence[LengthPoint]) -> list[str]:
    """One length: GFLOPs and time per model, then last/first model ratios of both."""
    times = [f"{p.forward_s:.3f}" if p.forward_s is not None else DASH for p in row]
    time_ratio = DASH
    if row[0].forward_s and row[-1].forward_s is not None:
        time_ratio = f"{row[-1].forward_s / row[0].forward_s:.2f}"
    flops_ratio = f"{row[-1].gflops / row[0].gflops:.3f}"
    return [f"{seconds:g}", *(f"{p.gflops:.2f}" for p in row), *times, flops_ratio, time_ratio]


def format_scaling(points: Sequence[LengthPoint], command: str | None = None) -> str:
    """Cost versus input length: one row per length, GFLOPs and forward time per model."""
    if not points:
        raise ValueError("no points to format")
    names = list(dict.fromkeys(point.name for point in points))
    lengths = list(dict.fromkeys(point.seconds for point in points))
    by_key = {(point.name, point.seconds): point for point in points}
    header = ["input (s)", *(f"{n} GFLOPs" for n in names), *(f"{n} fwd (s)" for n in names)]
    header += [f"{names[-1]}/{names[0]} GFLOPs", f"{names[-1]}/{names[0]} time"]
    rows = [_scaling_row(s, [by_key[(name, s)] for name in names]) for s in lengths]
    lines = [
        f"One utterance, eval forward under no_grad on CPU, fp32, {_threads(points[0].threads)}, "
        "best of the timed runs after a warm-up; GFLOPs analytic (matmul/conv).",
        "",
        *_table(header, rows),
        *_footer(command),
    ]
    return "\n".join(lines)


def _threads(count: int) -> str:
    return f"{count} thread" if count == 1 else f"{count} threads"


def _model_json(report: ModelFlops) -> dict[str, object]:
    return {
        "name": report.name,
        "config": report.config.to_dict(),
        "seconds": report.seconds,
        "params": report.params,
        "gflops": report.gflops,
        "analytic": report.analytic.to_dict(),
        "measured": report.measured.to_dict() if report.measured else None,
        "paper": asdict(report.paper) if report.paper else None,
    }


def to_json(
    reports: Sequence[ModelFlops] = (),
    ladder: LadderReport | None = None,
    scaling: Sequence[LengthPoint] = (),
) -> dict[str, object]:
    """A JSON-ready dict of whichever reports were computed (FLOPs as integers)."""
    result: dict[str, object] = {}
    if reports:
        result["models"] = [_model_json(report) for report in reports]
    if ladder is not None:
        result["ladder"] = {
            "seconds": ladder.seconds,
            "steps": [
                {
                    "rung": step.rung,
                    "change": step.change,
                    "delta_gflops": step.delta_gflops,
                    "delta_percent": step.delta_percent,
                    "delta_params": step.delta_params,
                    **_model_json(step.flops),
                }
                for step in ladder.steps
            ],
            "unet_cut_percent": ladder.unet_cut_percent,
            "subsampling_share_percent": ladder.subsampling_share_percent,
            "depthwise_cut_percent": ladder.depthwise_cut_percent,
            "depthwise_subsampling_cut_percent": ladder.depthwise_subsampling_cut_percent,
            "depthwise_cut_of_baseline_percent": ladder.depthwise_cut_of_baseline_percent,
            "total_cut_percent": ladder.total_cut_percent,
        }
    if scaling:
        result["scaling"] = [asdict(point) for point in scaling]
    return result
