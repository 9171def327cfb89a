"""How much a timing row moves on its own, and whether a change is larger than that (pure).

A row (scenario × case × variant × time-or-ratio) has, in each run, one estimate per worker
process. On the log scale a run's estimate is

    log x_run = mu + r_run + mean over its P processes of e_p,

with r_run ~ N(0, sigma_r^2) what moves between runs (a fresh stack, the machine's hour) and
e_p ~ N(0, sigma_w^2) what moves between processes (hash seed, memory layout, rounds' noise).
sigma_w^2 comes from the spread of processes within runs; sigma_r^2 from the spread of run
estimates over a window of stored runs (the baseline's own runs and recent history, as Bencher
does), less the part sigma_w explains. The difference new - mean(base) then has variance

    sigma_r^2 (1 + 1/k) + sigma_w^2 (1/P_new + mean(1/P_base)/k)

for k base runs, and a t test (Welch–Satterthwaite degrees of freedom) gives its p-value.
Without a window of runs the between-run part is unknown; the test then covers process noise
only, and callers widen the minimum effect accordingly.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.measure import stats

MIN_HISTORY = 2
"""Run estimates needed to say anything about between-run noise (with 2, the t test has one degree
of freedom: honest, and very cautious)."""


@dataclass(frozen=True)
class Estimate:
    """One run's view of a row: the estimate of each of its processes (seconds or ratios)."""

    run_id: str
    values: tuple[float, ...]
    within_se: float | None = None
    """For a single-process run: the standard error of its log estimate from its own interval
    (rounds only), when known."""

    @property
    def processes(self) -> int:
        return len(self.values)

    @property
    def log_mean(self) -> float:
        return sum(math.log(v) for v in self.values) / len(self.values)


@dataclass(frozen=True)
class Test:
    change: float
    """new / base (geometric means)."""
    ci: tuple[float, float]
    """95 % interval of the change."""
    p: float
    """Two-sided p-value, before any correction for many comparisons."""
    run_cv: float
    """How much one run's estimate of this row moves on its own (relative): what the gate is sized by."""
    basis: str
    """What noise the test accounts for, in words."""
    between_runs: bool
    """True when between-run noise was measured (a window of runs), not only within-run noise."""


def within_variance(runs: Sequence[Estimate]) -> tuple[float, int] | None:
    """Pooled variance of log process estimates around their run's mean, and its degrees of freedom."""
    ss, df = 0.0, 0
    for r in runs:
        if r.processes < 2:
            continue
        logs = [math.log(v) for v in r.values]
        m = sum(logs) / len(logs)
        ss += sum((x - m) ** 2 for x in logs)
        df += len(logs) - 1
    return (ss / df, df) if df else None


def between_run_variance(history: Sequence[Estimate], within: float | None) -> tuple[float, int] | None:
    """sigma_r^2 from the spread of run estimates over a window (at least MIN_HISTORY runs)."""
    if len(history) < MIN_HISTORY:
        return None
    means = [r.log_mean for r in history]
    m = sum(means) / len(means)
    var_runs = sum((x - m) ** 2 for x in means) / (len(means) - 1)
    explained = sum((within or 0.0) / r.processes for r in history) / len(history)
    return max(0.0, var_runs - explained), len(history)


def test_change(base: Sequence[Estimate], new: Estimate, history: Sequence[Estimate] = ()) -> Test:
    """Is `new` different from the `base` runs, given the noise this row shows?

    `history`: other runs of the same row (same machine, profile and parameters), the base runs
    may be among them; the new run must not be."""
    k = len(base)
    if k == 0:
        raise ValueError("no base run")
    d = new.log_mean - sum(b.log_mean for b in base) / k
    w = within_variance([*base, new])
    window = {r.run_id: r for r in [*history, *base] if r.run_id != new.run_id}
    between = between_run_variance(list(window.values()), w[0] if w else None)
    parts: list[tuple[float, float]] = []  # (variance contribution, degrees of freedom)
    if w is not None:
        sigma_w2, df_w = w
        parts.append((sigma_w2 * (1 / new.processes + sum(1 / b.processes for b in base) / k ** 2), df_w))
    else:  # one process per run: what each run's own interval says (rounds only)
        ses = [r.within_se for r in (new, *base) if r.within_se is not None]
        if ses:
            se2 = (new.within_se or max(ses)) ** 2 + sum((b.within_se or max(ses)) ** 2 for b in base) / k ** 2
            parts.append((se2, 30))
    if between is not None:
        sigma_r2, n = between
        parts.append((sigma_r2 * (1 + 1 / k), n - 1))
    var = sum(a for a, _ in parts)
    if var <= 0:  # nothing says how much this row moves: no evidence either way
        return Test(math.exp(d), (0.0, math.inf), 1.0, 0.0, "no noise information (no samples, one run)", False)
    df = var ** 2 / sum(a ** 2 / max(df_i, 1) for a, df_i in parts if a > 0)
    se = math.sqrt(var)
    p = stats.t_sf(d / se, df)
    half = stats.t_quantile(df) * se
    run_var = (between[0] if between else 0.0) + ((w[0] / new.processes) if w else (new.within_se or 0.0) ** 2)
    if between is not None:
        basis = f"noise between runs from {between[1]} runs" + (" and between processes" if w else "")
    elif w is not None:
        basis = "between processes only (no window of runs yet)"
    else:
        basis = "within one process only (no window of runs, one process each)"
    return Test(math.exp(d), (math.exp(d - half), math.exp(d + half)), p, math.sqrt(run_var), basis,
                between is not None)
