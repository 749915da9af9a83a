from __future__ import annotations

import itertools

import pytest
import torch

from squeezer.training.recipe import OptimConfig
from squeezer.training.schedule import (
    CosineHoldAnnealing,
    NoamHoldAnnealing,
    build_schedule,
    noam_hold_annealing_lr,
)


def test_warmup_hold_decay_shape_matches_nemo_formula():
    lr = [noam_hold_annealing_lr(s, 2e-3, 10, 20, 1.0, 1e-5) for s in range(200)]
    assert lr[0] == pytest.approx(2e-3 / 11)
    assert lr[9] == pytest.approx(2e-3 * 10 / 11)
    assert all(v == pytest.approx(2e-3) for v in lr[10:30])
    # NeMo: initial_lr * warmup^d / (step - hold)^d after warm-up + hold.
    assert lr[40] == pytest.approx(2e-3 * 10 / 20)
    assert lr[199] == pytest.approx(2e-3 * 10 / 179)
    assert all(a >= b for a, b in itertools.pairwise(lr[10:]))


def test_min_lr_floor_and_torch_scheduler():
    schedule = NoamHoldAnnealing(warmup_steps=2, hold_steps=0, decay_rate=1.0, min_lr_ratio=0.1)
    assert schedule.factor(10_000) == 0.1
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    scheduler = schedule.scheduler(optimizer)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([schedule.factor(s) for s in range(6)])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(warmup_steps=0, hold_steps=0), "warmup_steps"),
        (dict(warmup_steps=1, hold_steps=-1), "hold_steps"),
        (dict(warmup_steps=1, hold_steps=0, decay_rate=0), "decay_rate"),
        (dict(warmup_steps=1, hold_steps=0, min_lr_ratio=2), "min_lr_ratio"),
    ],
)
def test_bad_settings_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        NoamHoldAnnealing(**kwargs)


def test_cosine_warms_up_holds_and_anneals_to_min_lr_at_the_step_budget():
    schedule = CosineHoldAnnealing(
        warmup_steps=10, hold_steps=20, total_steps=130, min_lr_ratio=0.01
    )
    factors = [schedule.factor(s) for s in range(200)]
    assert factors[0] == pytest.approx(1 / 11)
    assert all(f == 1.0 for f in factors[10:30])
    assert factors[80] == pytest.approx(0.01 + 0.99 * 0.5)  # half way down the cosine
    assert factors[130] == pytest.approx(0.01)
    assert all(f == pytest.approx(0.01) for f in factors[130:])  # stays at min_lr past the budget
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(warmup_steps=0, hold_steps=0, total_steps=10), "warmup_steps"),
        (dict(warmup_steps=1, hold_steps=-1, total_steps=10), "hold_steps"),
        (dict(warmup_steps=5, hold_steps=5, total_steps=10), "total_steps"),
        (dict(warmup_steps=1, hold_steps=0, total_steps=10, min_lr_ratio=-1), "min_lr_ratio"),
    ],
)
def test_cosine_bad_settings_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CosineHoldAnnealing(**kwargs)


def test_build_schedule_follows_the_recipe():
    noam = build_schedule(OptimConfig(warmup_steps=10, hold_steps=5, min_lr=2e-5), None)
    assert noam == NoamHoldAnnealing(10, 5, 1.0, 2e-5 / 2e-3)
    cosine_optim = OptimConfig(warmup_steps=10, hold_steps=5, schedule="cosine", min_lr=2e-5)
    assert build_schedule(cosine_optim, 100) == CosineHoldAnnealing(10, 5, 100, 2e-5 / 2e-3)
    with pytest.raises(ValueError, match=r"run\.max_steps"):
        build_schedule(cosine_optim, None)
    with pytest.raises(ValueError, match="'linear'"):
        build_schedule(OptimConfig(schedule="linear"), 100)  # type: ignore[arg-type]
