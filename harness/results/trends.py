"""Every row of a scenario's stored history, with the steps and drifts it shows.

A row is scenario × case × variant × metric (time, ratio, and each exact counter); its series is
the row's value in each complete run of one machine class, in commit order. Change points come
from harness.results.changepoints: time and ratio rows statistically (their own noise, a
minimum effect), exact counters whenever the value changes (beyond a declared tolerance). A
step knows its commit range, and says so when the installed dependencies changed across it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.results import changepoints as cp
from harness.results.model import Result

MIN_EFFECT = {"time": 0.05, "ratio": 0.03}
STATISTICAL_EFFECT = 0.10
"""Minimum step of a scenario's statistical metric (throughput, p95/p99 of a load variant)."""
TIMING = ("time", "ratio")


@dataclass(frozen=True)
class Point:
    run_id: str
    sha: str | None
    dirty: bool
    started_at: str
    packages_hash: str | None
    value: float


@dataclass(frozen=True)
class Finding:
    """A step (or a drift) of one row, ready to show."""

    scenario: str
    case: str
    variant: str
    metric: str
    kind: str
    """'step' or 'drift'."""
    change: float
    """new level / old level (step), or the total over the window (drift, as 1 + total)."""
    ci95: tuple[float, float] | None
    p: float
    support: tuple[int, int]
    """Runs before and after (step); runs in the window (drift: (n, 0))."""
    before: Point | None
    after: Point
    """The first run at the new level (step), or the newest run (drift)."""
    worse: bool
    dependencies: tuple[str, ...] = ()
    """Distributions whose version changed across the step ('django 5.2.1 → 5.2.2')."""
    exact: bool = False
    """An exact counter's step (any change, seen the night it happens); else a tested level change."""

    @property
    def row(self) -> str:
        return f"{self.case} · {self.variant} · {self.metric}"

    @property
    def commits(self) -> str:
        a = (self.before.sha or "?")[:8] if self.before else "…"
        return f"{a}..{(self.after.sha or '?')[:8]}"


def machine_class(result: Result) -> str:
    env = result.env
    return str(env.get("machine_class") or f"{env.get('cpus')} cpu · {env.get('cpu_model')}")


def rows(runs: Sequence[Result]) -> dict[tuple[str, str, str, str], list[Point]]:
    """(scenario, case, variant, metric) -> its points, over runs already in commit order."""
    out: dict[tuple[str, str, str, str], list[Point]] = {}
    for r in runs:
        for case in r.cases:
            for v in case.variants.values():
                if v.skipped:
                    continue
                values = {"time": v.median_s, "ratio": v.ratio if v.name != case.baseline else None,
                          **{k: x for k, x in v.counters.items() if r.metric(k, counter=True).kind == "exact"},
                          **{k: x for k, x in v.metrics.items() if r.metric(k).kind == "statistical"
                             and isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0}}
                for metric, value in values.items():
                    if value is None or (metric in TIMING and value <= 0):
                        continue
                    point = Point(r.run_id, r.env.get("git_sha"), bool(r.env.get("git_dirty")), r.started_at,
                                  r.env.get("packages_hash"), float(value))
                    out.setdefault((r.scenario, case.name, v.name, metric), []).append(point)
    return out


def findings(runs: Sequence[Result], env_of: dict[str, dict] | None = None) -> list[Finding]:
    """Steps and drifts of every row of these runs (one machine class, commit order)."""
    env_of = env_of or {r.run_id: r.env for r in runs}
    newest = runs[-1] if runs else None
    out: list[Finding] = []
    for (scenario, case, variant, metric), points in rows(runs).items():
        values = [p.value for p in points]
        m = newest.metric(metric, counter=True) if newest is not None and metric not in TIMING else None
        timing = metric in TIMING or (m is not None and m.kind == "statistical")  # noisy: segmented, tested
        effect = MIN_EFFECT.get(metric, STATISTICAL_EFFECT)
        if timing:
            found = cp.steps(values, min_effect=effect)
        else:
            found = [s for s in _counter_steps(values) if abs(s.change - 1) > (m.tolerance if m else 0.0)]
        for s in found:
            before, after = points[s.index - 1], points[s.index]
            better = "higher" if (m is not None and m.better == "higher") else "lower"
            worse = (s.change > 1) if better == "lower" else (s.change < 1)
            out.append(Finding(scenario, case, variant, metric, "step", s.change, s.ci95, s.p, s.support, before,
                               after, worse, _dependency_changes(env_of.get(before.run_id, {}),
                                                                 env_of.get(after.run_id, {})), exact=not timing))
        if timing:
            # a drift is a trend within one level: runs before the last step are another level,
            # and a step inside the window would pass for a trend
            since = found[-1].index if found else 0
            d = cp.drift_named(values[since:], min_effect=effect)
            if d is not None:
                up_is_worse = m is None or m.better != "higher"
                out.append(Finding(scenario, case, variant, metric, "drift", 1 + d.total, None, d.p, (d.runs, 0),
                                   points[since + d.start], points[-1], (d.total > 0) == up_is_worse))
    return out


def _counter_steps(values: Sequence[float]) -> list[cp.Step]:
    out = []
    for i in range(1, len(values)):
        a, b = values[i - 1], values[i]
        if a != b:
            change = b / a if a else math.inf
            out.append(cp.Step(i, a, b, change, (change, change), 0.0, (i, len(values) - i)))
    return out


def _dependency_changes(before: dict, after: dict) -> tuple[str, ...]:
    if not before.get("packages_hash") or before.get("packages_hash") == after.get("packages_hash"):
        return ()
    old = dict(p.split("==", 1) for p in before.get("packages", ()) if "==" in p)
    new = dict(p.split("==", 1) for p in after.get("packages", ()) if "==" in p)
    changed = [f"{name} {old.get(name, '—')} → {new.get(name, '—')}" for name in sorted(set(old) | set(new))
               if old.get(name) != new.get(name)]
    return tuple(changed) or ("the installed set changed",)


def new_regressions(items: Sequence[Finding], runs: Sequence[Result]) -> list[Finding]:
    """Steps that became visible with the newest run (a step needs MIN_SIZE runs after it, so it
    shows once, the night it is confirmed) and go the worse way."""
    if not runs:
        return []

    def new(f: Finding) -> bool:
        if not f.exact:
            return f.support[1] == cp.MIN_SIZE  # just confirmed by its third run
        return f.after.run_id == runs[-1].run_id  # an exact counter: the newest run changed it
    return [f for f in items if f.kind == "step" and f.worse and new(f)]
