"""The paired bootstrap: exact cases, coverage of the true difference, bad input."""

import numpy as np
import pytest

from squeezer.analysis.significance import paired_bootstrap


def test_identical_models_are_not_distinguishable():
    errors, lengths = [3, 0, 5, 2], [20, 10, 30, 15]
    result = paired_bootstrap(errors, errors, lengths, resamples=500)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.verdict == "not distinguishable"


def test_one_error_fewer_on_every_utterance_is_better_by_exactly_that():
    # Equal lengths: every resample's difference is -1 / 10, so the interval is that point.
    result = paired_bootstrap([4] * 50, [3] * 50, [10] * 50, resamples=500)
    assert result.difference == pytest.approx(-0.1)
    assert result.low == pytest.approx(-0.1) and result.high == pytest.approx(-0.1)
    assert result.verdict == "better"
    swapped = paired_bootstrap([3] * 50, [4] * 50, [10] * 50, resamples=500)
    assert swapped.verdict == "worse"


def test_a_few_large_differences_among_many_ties_stay_undecided():
    # One utterance decides the point estimate; resamples without it give 0.
    baseline, candidate = [0] * 40, [0] * 40
    baseline[7] = 5
    result = paired_bootstrap(baseline, candidate, [10] * 40, resamples=2000)
    assert result.difference < 0 and result.high == 0.0
    assert result.verdict == "not distinguishable"


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    # A population of utterances with correlated errors; test sets of 300 are drawn from it.
    rng = np.random.default_rng(1)
    size = 20_000
    lengths = rng.integers(10, 80, size)
    hardness = rng.beta(1, 6, size)
    baseline = rng.binomial(lengths, hardness)
    candidate = rng.binomial(lengths, np.clip(hardness * 0.9 + 0.005, 0, 1))
    truth = (candidate.sum() - baseline.sum()) / lengths.sum()
    trials, covered = 200, 0
    for trial in range(trials):
        pick = rng.integers(0, size, 300)
        result = paired_bootstrap(
            baseline[pick], candidate[pick], lengths[pick], resamples=1000, seed=trial
        )
        covered += result.low <= truth <= result.high
    # Binomial(200, 0.95): mean 190, sd 3.1; the percentile bootstrap runs slightly under.
    assert 178 <= covered <= 200


def test_the_same_seed_gives_the_same_interval():
    rng = np.random.default_rng(0)
    a, b, n = rng.integers(0, 5, 100), rng.integers(0, 5, 100), rng.integers(5, 30, 100)
    assert paired_bootstrap(a, b, n, seed=3) == paired_bootstrap(a, b, n, seed=3)


@pytest.mark.parametrize(
    ("a", "b", "n", "message"),
    [
        ([1, 2], [1], [5, 5], "N errors"),
        ([], [], [], "at least one"),
        ([0, 0], [0, 0], [0, 0], "at least one"),
        ([-1, 0], [0, 0], [5, 5], ">= 0"),
    ],
)
def test_bad_input_is_one_line_error(a, b, n, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b, n, resamples=10)
