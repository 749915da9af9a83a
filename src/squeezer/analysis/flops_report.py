"""FLOPs reports: models beside the paper's figures, the ablation ladder, cost versus length.

    models = load_models(["squeezeformer-xs", "conformer-s"])
    reports = flops_report(models, seconds=30.0)       # analytic + FlopCounterMode, by component
    ladder = ladder_report(seconds=30.0)               # Conformer-M -> Squeezeformer-SM

The headline number of every report is the matmul/conv count (`FlopsBreakdown.matmul_total`),
the convention of `FlopCounterMode` and of PAPER.md's NeMo and Zipformer columns; the
elementwise estimate is shown beside it. `flops_scaling` measures cost versus
input length, `flops_table` formats the results, `flops_plot` draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from squeezer.analysis.flops import FlopsBreakdown, analytic_flops, frames_for_seconds
from squeezer.analysis.flops_measured import measured_flops
from squeezer.config import EncoderConfig, Rung, ablation_ladder, list_presets
from squeezer.nn import CtcHead, SequenceEncoder

__all__ = [
    "PAPER",
    "PAPER_SECONDS",
    "LadderReport",
    "LadderStep",
    "ModelFlops",
    "PaperFlops",
    "flops_report",
    "ladder_report",
    "load_models",
]

PAPER_SECONDS = 30.0  # every reference figure is for one 30 s utterance


@dataclass(frozen=True)
class PaperFlops:
    """PAPER.md's figures for one model at 30 s; None where a source gives none.

    Attributes:
        table3: GFLOPs of the Squeezeformer paper's Table 3 (marked "verify" in PAPER.md).
        zipformer: GFLOPs the Zipformer paper measured (Table 2, DeepSpeed, encoder only).
        nemo: GFLOPs of `FlopCounterMode` on NeMo 2.7.3's encoder + CTC linear.
        params_m: NeMo's parameter count with a 129-way CTC linear, millions.
    """

    table3: float | None
    zipformer: float | None
    nemo: float | None
    params_m: float | None


PAPER: dict[str, PaperFlops] = {
    "squeezeformer-xs": PaperFlops(15.8, 18.2, 17.9, 9.03),
    "squeezeformer-s": PaperFlops(26.3, 33.7, None, 18.57),
    "squeezeformer-sm": PaperFlops(42.7, 47.6, 46.9, 28.18),
    "squeezeformer-m": PaperFlops(72.0, 88.4, 87.1, 55.62),
    "squeezeformer-ml": PaperFlops(169.2, 183.3, None, 125.03),
    "squeezeformer-l": PaperFlops(277.9, 333.7, None, 236.25),
    "conformer-s": PaperFlops(26.2, None, 29.3, 8.73),
    "conformer-m": PaperFlops(71.7, None, 77.9, 27.36),
    "conformer-l": PaperFlops(280.6, None, 298.1, 121.50),
}


@dataclass(frozen=True)
class ModelFlops:
    """One model's parameters and FLOPs for one utterance of `seconds`.

    `paper` is set only for an unmodified preset at 30 s, where PAPER.md's figures apply.
    """

    name: str
    config: EncoderConfig
    seconds: float
    params: int
    analytic: FlopsBreakdown
    measured: FlopsBreakdown | None
    paper: PaperFlops | None

    @property
    def gflops(self) -> float:
        """The headline count: matmul/conv GFLOPs (the counter's convention), analytic."""
        return self.analytic.matmul_total / 1e9

    @property
    def square_position_gflops(self) -> float:
        """The headline count with the position branch sized like the content branch.

        Position scores as a T x T product and T projected positions, instead of 2T - 1
        relative distances: six of the nine Table 3 figures equal this within 0.5 %
        (docs/flops.md).
        """
        D = self.config.d_model
        excess = sum(2 * T * (T - 1) * D + 2 * (T - 1) * D * D for T in self.analytic.block_frames)
        return (self.analytic.matmul_total - excess) / 1e9

    @property
    def encoder_gflops(self) -> float:
        """The headline count without the CTC head (the Zipformer paper's column)."""
        return (self.analytic.matmul_total - self.analytic.components["ctc_head"]) / 1e9


def load_models(specs: Sequence[str]) -> list[tuple[str, EncoderConfig]]:
    """Preset names or YAML config paths -> (name, config); no specs: every preset."""
    models = []
    for spec in specs or list_presets():
        if spec in list_presets():
            models.append((spec, EncoderConfig.preset(spec)))
        elif spec.endswith((".yaml", ".yml")) or Path(spec).exists():
            models.append((Path(spec).stem, EncoderConfig.from_yaml(spec)))
        else:
            raise ValueError(
                f"{spec!r} is neither a preset ({', '.join(list_presets())}) nor a file"
            )
    return models


def _paper_figures(name: str, config: EncoderConfig, seconds: float) -> PaperFlops | None:
    if name not in PAPER or seconds != PAPER_SECONDS:
        return None
    return PAPER[name] if config == EncoderConfig.preset(name) else None


def _count_params(config: EncoderConfig, vocab_size: int) -> int:
    """Parameters of the encoder and the CTC head (what the paper and NeMo count)."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        modules = [SequenceEncoder(config), CtcHead(config.d_model, vocab_size)]
    return sum(p.numel() for module in modules for p in module.parameters())


def flops_report(
    models: Sequence[tuple[str, EncoderConfig]],
    seconds: float = PAPER_SECONDS,
    vocab_size: int = 128,
    measure: bool = True,
) -> list[ModelFlops]:
    """Parameters and FLOPs (analytic, and measured unless `measure` is False) per model.

    Args:
        models: (name, config) pairs, e.g. from `load_models`.
        seconds: utterance length; 10 ms feature frames (30 s -> 3000 frames).
        vocab_size: tokens without the CTC blank.
        measure: also run `FlopCounterMode` on a real forward pass (seconds per large model).

    Returns:
        One `ModelFlops` per model, in order.
    """
    frames = frames_for_seconds(seconds)
    reports = []
    for name, config in models:
        measured = measured_flops(config, frames, vocab_size) if measure else None
        reports.append(
            ModelFlops(
                name=name,
                config=config,
                seconds=seconds,
                params=_count_params(config, vocab_size),
                analytic=analytic_flops(config, frames, vocab_size),
                measured=measured,
                paper=_paper_figures(name, config, seconds),
            )
        )
    return reports


@dataclass(frozen=True)
class LadderStep:
    """One rung of the ablation ladder and its change against the rung before."""

    rung: str
    change: str
    flops: ModelFlops
    delta_gflops: float
    delta_percent: float
    delta_params: int


@dataclass(frozen=True)
class LadderReport:
    """The ablation ladder with the paper's claims in our numbers (all in matmul/conv FLOPs).

    Attributes:
        unet_cut_percent: the Temporal U-Net rung's change (paper: about -20 %).
        subsampling_share_percent: the subsampling front's share of Conformer-M (paper: up to
            28 %).
        depthwise_cut_percent: the depthwise-separable subsampling rung's change of the whole
            model (paper: about -22 %).
        depthwise_subsampling_cut_percent: the same rung's change of the front alone.
        depthwise_cut_of_baseline_percent: the same rung's saving as a share of Conformer-M.
        total_cut_percent: Squeezeformer-SM against Conformer-M.
    """

    seconds: float
    steps: list[LadderStep]
    unet_cut_percent: float
    subsampling_share_percent: float
    depthwise_cut_percent: float
    depthwise_subsampling_cut_percent: float
    depthwise_cut_of_baseline_percent: float
    total_cut_percent: float


def _percent(new: float, old: float) -> float:
    return 100.0 * (new - old) / old


def _step(steps: list[LadderStep], rung: str) -> LadderStep:
    for step in steps:
        if step.rung == rung:
            return step
    raise ValueError(f"the ablation ladder has no rung {rung!r}")


def _ladder_steps(rungs: list[Rung], reports: list[ModelFlops]) -> list[LadderStep]:
    steps = []
    for index, (rung, report) in enumerate(zip(rungs, reports, strict=True)):
        previous = reports[index - 1] if index else report
        steps.append(
            LadderStep(
                rung=rung.name,
                change=rung.change,
                flops=report,
                delta_gflops=report.gflops - previous.gflops,
                delta_percent=_percent(report.gflops, previous.gflops),
                delta_params=report.params - previous.params,
            )
        )
    return steps


def _subsampling_gflops(report: ModelFlops) -> float:
    return report.analytic.components["subsampling"] / 1e9


def ladder_report(
    seconds: float = PAPER_SECONDS, vocab_size: int = 128, measure: bool = True
) -> LadderReport:
    """Every rung of `ablation_ladder()` with its FLOPs and its change from the rung before."""
    rungs = ablation_ladder()
    reports = flops_report([(r.name, r.config) for r in rungs], seconds, vocab_size, measure)
    steps = _ladder_steps(rungs, reports)
    base, last = reports[0], reports[-1]
    depthwise = _step(steps, "depthwise-subsampling")
    before = steps[steps.index(depthwise) - 1].flops
    return LadderReport(
        seconds=seconds,
        steps=steps,
        unet_cut_percent=_step(steps, "temporal-unet").delta_percent,
        subsampling_share_percent=100.0 * _subsampling_gflops(base) / base.gflops,
        depthwise_cut_percent=depthwise.delta_percent,
        depthwise_subsampling_cut_percent=_percent(
            _subsampling_gflops(depthwise.flops), _subsampling_gflops(before)
        ),
        depthwise_cut_of_baseline_percent=100.0 * depthwise.delta_gflops / base.gflops,
        total_cut_percent=_percent(last.gflops, base.gflops),
    )
