"""Parameter counts against the paper (Table 3) and NeMo 2.7.3's builds (shared/PAPER.md)."""

from __future__ import annotations

import pytest

from squeezer import AsrModel, EncoderConfig

# Millions of parameters with a 128-token vocabulary (+ blank): paper Table 3 for
# Squeezeformer, NeMo's Conformer-CTC builds for the Conformer baselines.
PAPER_PARAMS_M = {
    "squeezeformer-xs": 9.0,
    "squeezeformer-s": 18.6,
    "squeezeformer-sm": 28.2,
    "squeezeformer-m": 55.6,
    "squeezeformer-ml": 125.1,
    "squeezeformer-l": 236.3,
    "conformer-s": 8.7,
    "conformer-m": 27.4,
    "conformer-l": 121.5,
}


def count_params(name: str) -> int:
    model = AsrModel(EncoderConfig.preset(name), vocab_size=128)
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_paper():
    rows = []
    for name, paper in PAPER_PARAMS_M.items():
        ours = count_params(name) / 1e6
        rows.append((name, ours, paper, ours / paper))
    print("\nmodel              ours (M)  paper (M)  ratio")
    for name, ours, paper, ratio in rows:
        print(f"{name:<18} {ours:8.2f}  {paper:9.1f}  {ratio:.4f}")
    for name, _, _, ratio in rows:
        assert ratio == pytest.approx(1.0, abs=0.01), name


# NeMo 2.7.3's SqueezeformerEncoder / ConformerEncoder + a 129-way CTC linear, in millions
# rounded to two decimals (shared/PAPER.md): a finer check than the paper's one decimal.
NEMO_PARAMS_M = {
    "squeezeformer-xs": 9.03,
    "squeezeformer-s": 18.57,
    "squeezeformer-sm": 28.18,
    "squeezeformer-m": 55.62,
    "squeezeformer-ml": 125.03,
    "squeezeformer-l": 236.25,
    "conformer-s": 8.73,
    "conformer-m": 27.36,
    "conformer-l": 121.50,
}


@pytest.mark.parametrize("name", list(NEMO_PARAMS_M))
def test_counts_equal_nemo_builds(name):
    assert round(count_params(name) / 1e6, 2) == NEMO_PARAMS_M[name]
