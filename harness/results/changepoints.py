"""Where a series of runs changed level, and whether it is drifting (pure: values in, findings out).

A row's history (its estimate in each stored run, in commit order) is segmented on the log scale
with PELT (the `ruptures` library: kept, numpy/scipy only, wheels for every Python the lab
supports — Apache Otava and MongoDB's signal-processing-algorithms pin old numpy/Python or bring
cloud clients along). The penalty is BIC-like, 2·sigma²·log(n), with sigma estimated robustly from
successive differences, so it follows each row's own noise. Every boundary PELT proposes is then
tested as Otava does after E-Divisive: a Welch t test between the segments on either side;
a step is kept when p < alpha and its magnitude passes the minimum effect. It carries the commit
range (the run before and the run after), the change with its 95 % interval, and how many runs
support each side.

A slow drift has no boundary: over the last `window` runs (four weeks of nightly runs by
default), a least-squares trend test on the logs names it when the trend is significant on two
nights in a row and its total (from a Theil–Sen slope, robust to a stray night) passes the
minimum effect.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.001
"""Per-boundary significance: with dozens of rows and 60 nights, false steps stay rare."""
MIN_SIZE = 3
"""Runs each side of a step needs (so a step becomes visible three runs after it happened)."""
DRIFT_WINDOW = 28
"""Four weeks of nightly runs: the slope of a 2 %/week drift is seen within about three."""
DRIFT_ALPHA = 0.01


@dataclass(frozen=True)
class Step:
    index: int
    """The first run at the new level (the commit range is runs[index-1] .. runs[index])."""
    before: float
    after: float
    change: float
    """after / before (geometric means of the two segments)."""
    ci95: tuple[float, float]
    p: float
    support: tuple[int, int]
    """Runs in the segment before and after."""


@dataclass(frozen=True)
class Drift:
    start: int
    """First run of the window the trend was found in."""
    per_run: float
    """Relative change per run (e.g. 0.003 = +0.3 % a night)."""
    total: float
    """Relative change over the window."""
    p: float
    runs: int


def _sigma(logs: Sequence[float]) -> float:
    """Noise of a series from its successive differences (robust to steps: a step is one outlier)."""
    diffs = sorted(abs(b - a) for a, b in zip(logs, logs[1:]))
    if not diffs:
        return 0.0
    mad = diffs[len(diffs) // 2]
    return 1.4826 * mad / math.sqrt(2)


def _welch(left: Sequence[float], right: Sequence[float]) -> tuple[float, float, float]:
    """(difference of means, its standard error, two-sided p) between two samples (logs)."""
    from scipy import stats as sps

    ml, mr = sum(left) / len(left), sum(right) / len(right)
    vl = sum((x - ml) ** 2 for x in left) / (len(left) - 1)
    vr = sum((x - mr) ** 2 for x in right) / (len(right) - 1)
    se2 = vl / len(left) + vr / len(right)
    d = mr - ml
    if se2 <= 0:
        return d, 0.0, 0.0 if d else 1.0
    df = se2 ** 2 / ((vl / len(left)) ** 2 / (len(left) - 1) + (vr / len(right)) ** 2 / (len(right) - 1))
    p = float(2 * sps.t.sf(abs(d) / math.sqrt(se2), df))
    return d, math.sqrt(se2), p


def steps(values: Sequence[float], *, min_effect: float = 0.03, alpha: float = ALPHA,
          min_size: int = MIN_SIZE) -> list[Step]:
    """Level changes in a series of positive values (one per run, in commit order)."""
    import numpy as np
    import ruptures as rpt
    from scipy import stats as sps

    logs = [math.log(v) for v in values]
    n = len(logs)
    if n < 2 * min_size:
        return []
    sigma = _sigma(logs)
    if sigma == 0.0:  # a noiseless series (a counter): every change of value is a step
        return _exact_steps(values, min_size)
    penalty = 2 * sigma ** 2 * math.log(n)
    bkps = rpt.Pelt(model="l2", min_size=min_size, jump=1).fit(np.asarray(logs).reshape(-1, 1)).predict(pen=penalty)
    bounds = [0, *bkps]
    for i in range(1, len(bounds) - 1):  # PELT's boundary, moved to where the split fits best nearby
        bounds[i] = _refine(logs, bounds[i - 1], bounds[i], bounds[i + 1], min_size)
    found = []
    for i in range(1, len(bounds) - 1):
        left, right = logs[bounds[i - 1]:bounds[i]], logs[bounds[i]:bounds[i + 1]]
        d, se, p = _welch(left, right)
        df = max(1, min(len(left), len(right)) - 1)
        half = float(sps.t.ppf(0.975, df)) * se
        change = math.exp(d)
        if p < alpha and abs(change - 1) >= min_effect:
            found.append(Step(bounds[i], math.exp(sum(left) / len(left)), math.exp(sum(right) / len(right)),
                              change, (math.exp(d - half), math.exp(d + half)), p, (len(left), len(right))))
    return found


def _refine(logs: Sequence[float], lo: int, b: int, hi: int, min_size: int, reach: int = 4) -> int:
    """The split of logs[lo:hi] near b (within `reach`) with the least squared error on both sides."""
    def sse(seg: Sequence[float]) -> float:
        m = sum(seg) / len(seg)
        return sum((x - m) ** 2 for x in seg)
    candidates = range(max(lo + min_size, b - reach), min(hi - min_size, b + reach) + 1)
    return min(candidates, key=lambda k: (sse(logs[lo:k]) + sse(logs[k:hi]), abs(k - b)), default=b)


def _exact_steps(values: Sequence[float], min_size: int) -> list[Step]:
    out = []
    for i in range(1, len(values)):
        if values[i] != values[i - 1]:
            out.append(Step(i, values[i - 1], values[i], values[i] / values[i - 1] if values[i - 1] else math.inf,
                            (values[i] / values[i - 1],) * 2 if values[i - 1] else (math.inf, math.inf), 0.0,
                            (i, len(values) - i)))
    return out


def drift(values: Sequence[float], *, window: int = DRIFT_WINDOW, min_effect: float = 0.03,
          alpha: float = DRIFT_ALPHA) -> Drift | None:
    """A significant monotone trend over the last `window` runs whose total passes `min_effect`."""
    from scipy import stats as sps

    tail = [math.log(v) for v in values[-window:]]
    if len(tail) < max(8, window // 2):
        return None
    xs = list(range(len(tail)))
    fit = sps.linregress(xs, tail)  # least squares: the most powerful test of a trend in Gaussian noise
    slope = sps.theilslopes(tail, xs)[0]  # the reported rate: robust to a stray night
    total = math.exp(slope * (len(tail) - 1)) - 1
    if fit.pvalue < alpha and abs(total) >= min_effect and (slope > 0) == (fit.slope > 0):
        return Drift(len(values) - len(tail), math.exp(slope) - 1, total, float(fit.pvalue), len(tail))
    return None


def drift_named(values: Sequence[float], **kw) -> Drift | None:
    """A drift found with the newest run and without it: two nights in a row, so one odd night
    neither names nor hides a trend."""
    if len(values) < 2:
        return None
    found = drift(values, **kw)
    return found if found is not None and drift(values[:-1], **kw) is not None else None
