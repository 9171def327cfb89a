"""Statistics as pure functions over sequences of floats (no state, no caches).

Times are compared as *paired ratios*: in round r every variant is timed once, back to back, so
variant/baseline in the same round cancels the slow drift these machines show (noise comes in
phases of tens of seconds). The ratio reported is the median of the per-round ratios, with a
bootstrap 95 % interval over rounds.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


# -- honest intervals -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """An interval with the coverage it really has and how it was made (for labels)."""

    estimate: float
    lo: float
    hi: float
    level: float
    """Its coverage: 0.95 when the sample allows it, less when it cannot (n = 3 rounds: 0.75)."""
    method: str

    @property
    def bounds(self) -> tuple[float, float]:
        return self.lo, self.hi


def _binom_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def median_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Distribution-free interval for the median from order statistics: exact coverage for any n
    (no bootstrap, which returns [min, max] labelled 95 % at n = 3 while covering 75 %). When n is
    too small to reach `confidence`, the range is returned with the coverage it has (1 - 2^(1-n))."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if n == 0:
        raise ValueError("interval of no values")
    med = median(xs)
    if n == 1:
        return Interval(med, xs[0], xs[0], 0.0, "one value")
    # largest j such that P(X_(j) <= median <= X_(n-j+1)) = 1 - 2 P(Bin <= j-1) >= confidence
    best = 1
    for j in range(1, n // 2 + 1):
        if 1 - 2 * _binom_cdf(j - 1, n) >= confidence:
            best = j
        else:
            break
    level = 1 - 2 * _binom_cdf(best - 1, n)
    return Interval(med, xs[best - 1], xs[n - best], level, f"order statistics of {n} rounds")


_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_quantile(df: float, q: float = 0.975) -> float:
    """Student's t quantile (scipy when present; the 97.5 % table otherwise)."""
    try:
        from scipy import stats as sps

        return float(sps.t.ppf(q, df))
    except ImportError:  # pragma: no cover - scipy is a dependency; the table keeps this pure
        if q != 0.975:
            raise
        keys = sorted(_T975)
        return _T975[min(keys, key=lambda k: (abs(k - df), k))] if df < 120 else 1.96


def t_sf(t: float, df: float) -> float:
    """Two-sided p-value of a t statistic."""
    from scipy import stats as sps

    return float(2 * sps.t.sf(abs(t), df))


def between_process_interval(estimates: Sequence[float], confidence: float = 0.95) -> Interval:
    """The geometric mean of per-process estimates (ratios or times) with a t interval on their logs:
    each process's estimate already carries its own rounds' noise, so their spread is the noise a
    fresh process adds — hash seed, memory layout, the machine's phase — which one process cannot
    see. Needs 2+ processes (with 2 the interval is honest and wide: t has 1 degree of freedom)."""
    logs = np.log(np.asarray(estimates, dtype=float))
    p = logs.size
    if p < 2:
        raise ValueError("a between-process interval needs at least two processes")
    mean = float(logs.mean())
    se = float(logs.std(ddof=1)) / math.sqrt(p)
    half = t_quantile(p - 1, 0.5 + confidence / 2) * se
    return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), confidence,
                    f"t over {p} processes")


def hierarchical_bootstrap(groups: Sequence[Sequence[float]], statistic=np.median, n_resamples: int = 2000,
                           confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Resample processes, then rounds within each chosen process (two-level bootstrap). Kept for
    comparison: with few processes its percentile interval undercovers (see tests), which is why
    `between_process_interval` is what runs report."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    stats_out = np.empty(n_resamples)
    for i in range(n_resamples):
        chosen = rng.integers(0, len(arrays), len(arrays))
        pooled = np.concatenate([arrays[c][rng.integers(0, arrays[c].size, arrays[c].size)] for c in chosen])
        stats_out[i] = statistic(pooled)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(stats_out, [alpha, 1 - alpha])
    return float(lo), float(hi)


# -- many comparisons at once ------------------------------------------------------------------------
def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values: reject where adjusted < alpha controls the family-wise
    error rate (the chance of any false alarm across all rows) at alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (controls the false discovery rate)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for rank, i in enumerate(order):
        running = min(running, p_values[i] * m / (m - rank))
        adjusted[i] = running
    return adjusted


# -- order of variants within rounds -----------------------------------------------------------------
def williams_rows(n: int) -> list[list[int]]:
    """A Williams design: rows (round orders) in which every variant follows every other variant
    equally often, so carry-over (a cache one variant warms for the next) hits all alike. n rows for
    even n, 2n for odd n."""
    if n <= 0:
        return []
    if n == 1:
        return [[0]]
    first = [0]
    lo, hi = 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[(x + r) % n for x in first] for r in range(n)]
    if n % 2:
        rows += [list(reversed(row)) for row in rows]
    return rows


def round_orders(names: Sequence[str], seed: int) -> list[list[str]]:
    """The rows of a Williams design over `names`, labels assigned by a seeded shuffle."""
    import random

    labels = list(names)
    random.Random(seed).shuffle(labels)
    return [[labels[i] for i in row] for row in williams_rows(len(labels))]
