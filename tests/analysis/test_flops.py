"""FLOPs: the analytic formula against FlopCounterMode, the reports, tables, JSON and plots."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from squeezer import AsrModel, EncoderConfig
from squeezer.analysis.flops import (
    BLOCK_COMPONENTS,
    COMPONENTS,
    ELEMENTWISE,
    analytic_flops,
    frames_for_seconds,
)
from squeezer.analysis.flops_measured import CPU_SDPA, measured_flops, sdpa_share
from squeezer.analysis.flops_plot import plot_components, plot_ladder, plot_report, plot_scaling
from squeezer.analysis.flops_report import PAPER, flops_report, ladder_report, load_models
from squeezer.analysis.flops_scaling import equal_width_pair, length_scaling
from squeezer.analysis.flops_table import (
    format_blocks,
    format_components,
    format_ladder,
    format_scaling,
    format_table,
    to_json,
)
from tests.conftest import shrink, small_rungs

# Presets whose paper Table 3 figure is our count with a T x T position branch.
SQUARE_POSITION_MATCHES = {
    "squeezeformer-xs", "squeezeformer-sm", "squeezeformer-ml",
    "conformer-s", "conformer-m", "conformer-l",
}  # fmt: skip
COUNTED = [name for name in COMPONENTS if name != ELEMENTWISE]

# Every ablation rung and the two variants off the ladder, at lengths that give odd frame
# counts where the U-Net halves them (201 features -> 51 frames after 4x subsampling).
CASES = [(name, config, 201) for name, config in small_rungs()]
CASES += [
    ("no-subsampling-odd", shrink(EncoderConfig(), subsampling="none"), 77),
    ("conv2d-factor-8", shrink(EncoderConfig.preset("conformer-s"), subsampling_factor=8), 203),
    ("depthwise-factor-2", shrink(EncoderConfig(), subsampling_factor=2), 99),
]
# The positional schemes beyond the paper's, on the U-Net model (half-rate frames included).
CASES += [
    (f"position-{scheme}", shrink(EncoderConfig(), position=scheme), 201)
    for scheme in ("rope", "alibi", "absolute", "none")
]


def assert_counts_agree(config: EncoderConfig, frames: int, vocab_size: int = 128) -> None:
    analytic = analytic_flops(config, frames, vocab_size)
    measured = measured_flops(config, frames, vocab_size)
    assert set(measured.components) == set(COMPONENTS), "a module the attribution cannot place"
    # FLOP counts are shape arithmetic, the same on every CPU; rel is the formula's allowance.
    for name in COUNTED:
        assert measured.components[name] == pytest.approx(analytic.components[name], rel=0.01)
    assert measured.components[ELEMENTWISE] == 0
    assert measured.total == pytest.approx(analytic.matmul_total, rel=0.01)
    assert measured.block_frames == analytic.block_frames
    for mine, theirs in zip(analytic.blocks, measured.blocks, strict=True):
        for name in BLOCK_COMPONENTS:
            if name != ELEMENTWISE:
                assert theirs[name] == pytest.approx(mine[name], rel=0.01)


@pytest.mark.parametrize(("name", "config", "frames"), CASES, ids=[case[0] for case in CASES])
def test_analytic_matches_flop_counter(name, config, frames):
    assert_counts_agree(config, frames, vocab_size=16)


@pytest.mark.parametrize("preset", ["conformer-s", "squeezeformer-xs"])
def test_analytic_matches_flop_counter_at_full_size(preset):
    assert_counts_agree(EncoderConfig.preset(preset), frames=301)  # 3 s: 76 frames, 38 halved


def test_formula_by_hand():
    """One squeezeformer block without subsampling or U-Net, every term spelled out."""
    config = EncoderConfig(
        input_dim=8, d_model=16, num_layers=1, num_heads=2, conv_kernel_size=3,
        subsampling="none", time_reduce_idx=None, time_recover_idx=None,
    )  # fmt: skip
    T, D, F, K, V = 10, 16, 8, 3, 5
    terms = analytic_flops(config, T, vocab_size=V).terms
    assert terms["subsampling/linear"] == 2 * T * F * D
    assert terms["attention_projections/qkv_out"] == 8 * T * D * D
    assert terms["attention_projections/pos"] == 2 * (2 * T - 1) * D * D
    assert terms["attention_scores/content"] == terms["attention_scores/weighted_values"]
    assert terms["attention_scores/content"] == 2 * T * T * D
    assert terms["attention_scores/position"] == 2 * T * (2 * T - 1) * D
    assert terms["feed_forward/linear"] == 2 * (2 * 2 * T * D * 4 * D)  # two modules
    assert terms["convolution/depthwise"] == 2 * T * (2 * D) * K  # Swish: 2D channels
    assert terms["ctc_head/linear"] == 2 * T * D * (V + 1)


def test_cpu_sdpa_is_counted_with_torchs_formula():
    config = shrink(EncoderConfig(), time_reduce_idx=None, time_recover_idx=None)
    measured = measured_flops(config, 201, vocab_size=16)
    T, D = 51, config.d_model  # frames after 4x subsampling
    assert sdpa_share(measured) == config.num_layers * 2 * (2 * T * T * D)
    # The stock counter has no formula for the CPU kernel: the reason we register one.
    assert CPU_SDPA not in FlopCounterMode().flop_registry
    model = AsrModel(config, vocab_size=16).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as stock:
        model(torch.randn(1, 201, config.input_dim), torch.tensor([201]))
    assert stock.get_total_flops() == measured.total - sdpa_share(measured)


def test_presets_land_on_nemos_counter_and_params():
    reports = flops_report(load_models(list(PAPER)), seconds=30.0, measure=False)
    for report in reports:
        paper = report.paper
        # Exact counts against printed figures, the same on every CPU: the tolerances are the
        # figures' rounding and conventions (worst now: 0.005 M, 0.2 %, 2.0 %, 0.52 %).
        assert report.params / 1e6 == pytest.approx(paper.params_m, abs=0.01)
        if paper.nemo is not None:
            assert report.gflops == pytest.approx(paper.nemo, rel=0.01)
        if paper.zipformer is not None:
            assert report.encoder_gflops == pytest.approx(paper.zipformer, rel=0.025)
        if report.name in SQUARE_POSITION_MATCHES:  # docs/flops.md: Table 3's convention
            assert report.square_position_gflops == pytest.approx(paper.table3, rel=0.006)


def test_paper_figures_only_for_an_unmodified_preset_at_30_s():
    preset = EncoderConfig.preset("squeezeformer-xs")
    models = [("squeezeformer-xs", preset), ("squeezeformer-xs", preset.replace(d_model=128))]
    at_30, changed = flops_report(models, seconds=30.0, measure=False)
    assert at_30.paper == PAPER["squeezeformer-xs"] and changed.paper is None
    assert flops_report(models[:1], seconds=10.0, measure=False)[0].paper is None


def test_ladder_shows_the_papers_claims():
    ladder = ladder_report(seconds=30.0, measure=False)
    assert ladder.steps[0].rung == "conformer-m"
    assert -25 < ladder.unet_cut_percent < -15  # paper: about -20 %
    assert 20 < ladder.subsampling_share_percent <= 28  # paper: up to 28 %
    assert ladder.depthwise_cut_percent < -15  # paper: about -22 %
    assert ladder.steps[-1].flops.gflops < ladder.steps[0].flops.gflops
    text = format_ladder(ladder, command="squeezer flops --ladder")
    assert "temporal-unet" in text and "`squeezer flops --ladder`" in text


def test_load_models(tmp_path):
    path = tmp_path / "tiny.yaml"
    shrink(EncoderConfig()).to_yaml(path)
    (name, config), (preset, _) = load_models([str(path), "conformer-s"])
    assert name == "tiny" and config.d_model == 32 and preset == "conformer-s"
    assert len(load_models([])) == len(PAPER)
    with pytest.raises(ValueError, match="conformer-xxl"):
        load_models(["conformer-xxl"])


def test_frames_for_seconds():
    assert frames_for_seconds(30.0) == 3000
    with pytest.raises(ValueError, match="seconds=0"):
        frames_for_seconds(0)


def test_tables_json_and_plots(tmp_path):
    conformer = shrink(EncoderConfig.preset("conformer-s"))
    small = [("tiny", shrink(EncoderConfig())), ("tiny-conformer", conformer)]
    reports = flops_report(small, seconds=2.0, vocab_size=16)
    presets = flops_report(load_models(["conformer-m"]), seconds=30.0, measure=False)
    assert "| 1.001 |" in format_table(presets)  # ours / NeMo's counter, conformer-m
    table = format_table(reports, command="squeezer flops x.yaml")
    assert "| tiny |" in table and "`squeezer flops x.yaml`" in table
    assert "subsampling" in format_components(reports)
    assert format_blocks(reports[0]).count("\n") == 4 + 3  # title, blank, header, rule
    points = length_scaling(small, seconds_list=(0.5, 1.0), vocab_size=16, repeats=1)
    assert all(point.forward_s > 0 for point in points)
    assert "| 0.5 |" in format_scaling(points)
    ladder = ladder_report(measure=False)
    json.dumps(to_json(reports, ladder, points))
    for plot, data in ((plot_components, reports), (plot_scaling, points), (plot_ladder, ladder)):
        path = plot(data, tmp_path / f"{plot.__name__}.png")
        assert path.read_bytes()[:4] == b"\x89PNG"
    paths = plot_report(tmp_path / "out.png", reports, ladder)
    assert [path.name for path in paths] == ["out-components.png", "out-ladder.png"]
    assert plot_report(tmp_path / "one.png", scaling=points) == [tmp_path / "one.png"]


def test_equal_width_pairs():
    analytic = length_scaling(equal_width_pair("s"), seconds_list=(10.0, 60.0), timed=False)
    conformer, squeezeformer = analytic[:2], analytic[2:]
    assert [p.name for p in analytic] == ["conformer-s"] * 2 + ["squeezeformer-xs"] * 2
    assert all(p.forward_s is None for p in analytic)
    assert all(s.gflops < c.gflops for c, s in zip(conformer, squeezeformer, strict=True))
    with pytest.raises(ValueError, match="'xl'"):
        equal_width_pair("xl")
