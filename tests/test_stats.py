import math

import numpy as np
import pytest

from harness.measure import stats


def test_median_iqr_mad():
    xs = [1.0, 2.0, 3.0, 4.0, 100.0]
    assert stats.median(xs) == 3.0
    assert stats.iqr(xs) == pytest.approx(2.0)
    assert stats.mad(xs) == 1.0


def test_paired_ratio_cancels_drift():
    # The machine slows down 3x halfway through; the variant is always exactly 40 % of the baseline.
    drift = [1.0] * 10 + [3.0] * 10
    baseline = [0.010 * d for d in drift]
    variant = [0.004 * d for d in drift]
    ratio, (lo, hi) = stats.ratio_to_baseline(variant, baseline)
    assert ratio == pytest.approx(0.4)
    assert lo == pytest.approx(0.4) and hi == pytest.approx(0.4)


def test_bootstrap_ci_covers_known_ratio():
    rng = np.random.default_rng(1)
    true_ratio = 0.25
    baseline = rng.lognormal(mean=math.log(0.01), sigma=0.2, size=60)
    variant = baseline * true_ratio * rng.lognormal(mean=0.0, sigma=0.05, size=60)
    ratio, (lo, hi) = stats.ratio_to_baseline(list(variant), list(baseline))
    assert lo <= true_ratio <= hi
    assert ratio == pytest.approx(true_ratio, rel=0.03)
    assert hi - lo < 0.05


def test_bootstrap_is_deterministic_and_handles_one_value():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert stats.bootstrap_ci(xs, seed=3) == stats.bootstrap_ci(xs, seed=3)
    assert stats.bootstrap_ci([5.0]) == (5.0, 5.0)


def test_errors_on_bad_input():
    with pytest.raises(ValueError):
        stats.median([])
    with pytest.raises(ValueError):
        stats.paired_ratios([1.0], [1.0, 2.0])
