"""Statistics as pure functions over sequences of floats (no state, no caches).

Times are compared as *paired ratios*: in round r every variant is timed once, back to back, so
variant/baseline in the same round cancels the slow drift these machines show (noise comes in
phases of tens of seconds). The ratio reported is the median of the per-round ratios, with a
bootstrap 95 % interval over rounds.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(np.median(np.asarray(values, dtype=float)))


def iqr(values: Sequence[float]) -> float:
    """Interquartile range (p75 - p25)."""
    if not values:
        raise ValueError("iqr of no values")
    q75, q25 = np.percentile(np.asarray(values, dtype=float), [75, 25])
    return float(q75 - q25)


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation (unscaled)."""
    arr = np.asarray(values, dtype=float)
    return float(np.median(np.abs(arr - np.median(arr))))


def paired_ratios(values: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """values[i] / baseline[i] for each round i (both sequences are per-round samples)."""
    if len(values) != len(baseline):
        raise ValueError(f"paired samples differ in length: {len(values)} vs {len(baseline)}")
    return [v / b for v, b in zip(values, baseline) if b > 0]


def bootstrap_ci(
    values: Sequence[float], statistic=np.median, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` (deterministic for a given seed)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("bootstrap of no values")
    if arr.size == 1:
        return float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_resamples, arr.size))
    stats = statistic(arr[idx], axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def ratio_to_baseline(values: Sequence[float], baseline: Sequence[float], seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Median paired ratio and its bootstrap 95 % interval."""
    ratios = paired_ratios(values, baseline)
    return median(ratios), bootstrap_ci(ratios, seed=seed)


def ratio_of_totals(values: Sequence[float], baseline: Sequence[float], seed: int = 0,
                    n_resamples: int = 2000) -> tuple[float, tuple[float, float]]:
    """sum(values) / sum(baseline) over paired rounds, with a paired bootstrap 95 % interval.

    For op-stream cases each round replays the same chunk of ops for every variant; chunks
    differ in cost (more writes, more misses), so the right summary is the ratio of the totals
    over whole laps of the stream, resampling rounds as pairs.
    """
    v = np.asarray(values, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if v.size != b.size or v.size == 0:
        raise ValueError("ratio_of_totals needs paired, non-empty samples")
    point = float(v.sum() / b.sum())
    if v.size == 1:
        return point, (point, point)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))
    boots = v[idx].sum(axis=1) / b[idx].sum(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return point, (float(lo), float(hi))
