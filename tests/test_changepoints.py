"""Change points over a history: synthetic series with known steps, drifts and noise; rows of stored
results in commit order; the dashboard; the dependency note."""
from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from harness.results import changepoints as cp
from harness.results import trends
from tests.test_compare import make_run

NOISE = 0.033
"""Run-to-run noise of a ratio row measured here (benchmarks/calibrate.py, nightly profile)."""


def series(seed, n=60, step_at=None, step=0.0, drift_from=None, per_week=0.0, cv=NOISE):
    rng = random.Random(seed)
    out = []
    for night in range(n):
        level = (1 + step) if step_at is not None and night >= step_at else 1.0
        if drift_from is not None and night >= drift_from:
            level *= (1 + per_week) ** ((night - drift_from + 1) / 7)
        out.append(level * math.exp(rng.gauss(0, cv)))
    return out


def test_a_7_percent_step_is_found_at_its_night():
    found = 0
    for seed in range(20):
        steps = cp.steps(series(seed, step_at=30, step=0.07))
        found += any(abs(s.index - 30) <= 1 and 1.03 < s.change < 1.12 for s in steps)
    assert found >= 15, found  # 80 % at this noise (benchmarks/changepoint_sim.py: 40 of 50)


def test_a_step_carries_its_interval_and_support():
    (s,) = cp.steps(series(4, step_at=30, step=0.10, cv=0.01))
    assert s.index == 30 and s.support == (30, 30)
    assert s.ci95[0] < s.change < s.ci95[1] and s.ci95[0] > 1.05 and s.p < 1e-6


def test_pure_noise_makes_almost_no_steps():
    false = sum(len(cp.steps(series(1000 + seed))) for seed in range(30))
    assert false <= 3, false  # ≤ 1 false step per 60 nights, far under


def test_a_drift_is_named_and_noise_rarely_is():
    named = sum(cp.drift_named(series(seed, drift_from=30, per_week=0.02)) is not None for seed in range(20))
    assert named >= 10, named  # over the 30 nights of drift, most are named (the sim: 47 of 50)
    noise = sum(cp.drift_named(series(2000 + seed)) is not None for seed in range(30))
    assert noise <= 3, noise
    d = cp.drift_named(series(7, drift_from=0, per_week=0.05, cv=0.01))
    assert d is not None and d.total > 0.1 and d.per_run > 0


def test_short_series_have_no_findings():
    assert cp.steps([1.0, 2.0, 1.0]) == [] and cp.drift([1.0] * 5) is None


def _history(n=12, step_at=None, factor=1.0, queries_at=None):
    runs = []
    for i in range(n):
        fast = factor if step_at is not None and i >= step_at else 1.0
        r = make_run(f"202601{i + 1:02d}T000000Z-n_plus_one-{i:04d}", seed=100 + i, fast_factor=fast,
                     fast_queries=3.0 if queries_at is not None and i >= queries_at else 2.0, noise=0.005)
        runs.append(replace(r, started_at=f"2026-01-{i + 1:02d}T00:00:00+00:00",
                            env={**r.env, "git_sha": f"{i:08x}" + "0" * 32, "packages_hash": "b" if i >= 6 else "a",
                                 "packages": ["django==6.0.1" if i >= 6 else "django==5.2.9", "numpy==2.0"]}))
    return runs


def test_rows_of_a_history_find_the_step_and_its_commits():
    runs = _history(step_at=6, factor=1.5)
    items = trends.findings(runs)
    ratio = [f for f in items if f.metric == "ratio" and f.variant == "prefetch" and f.kind == "step"]
    assert len(ratio) == 1 and ratio[0].worse and abs(ratio[0].change - 1.5) < 0.1
    assert ratio[0].commits == f"{5:08x}..{6:08x}"
    assert ratio[0].dependencies == ("django 5.2.9 → 6.0.1",)  # a suspect beside the commit range


def test_a_step_is_not_also_called_a_drift():
    runs = _history(n=16, step_at=8, factor=1.6)  # one level change, flat on either side
    items = [f for f in trends.findings(runs) if f.variant == "prefetch" and f.metric in ("time", "ratio")]
    assert {f.kind for f in items} == {"step"}, [(f.kind, f.metric, f.change) for f in items]


def test_a_load_variants_p99_has_its_own_history():
    rng = random.Random(5)
    runs = []
    for i, r in enumerate(_history(n=14)):
        case = r.cases[0]
        v = case.variants["prefetch"]
        p99 = (40.0 if i >= 7 else 20.0) * math.exp(rng.gauss(0, 0.05))  # the tail doubles at run 7
        v = replace(v, metrics={**v.metrics, "p99_ms": p99, "errors": {"x": 1}})
        runs.append(replace(r, metrics={**r.metrics, "p99_ms": {"kind": "statistical", "better": "lower"}},
                            cases=(replace(case, variants={**case.variants, "prefetch": v}),)))
    (step,) = [f for f in trends.findings(runs) if f.metric == "p99_ms"]
    assert step.kind == "step" and step.worse and not step.exact and step.after.run_id == runs[7].run_id
    assert 1.8 < step.change < 2.2


def test_an_exact_counter_steps_the_night_it_changes_and_is_new_then():
    runs = _history(queries_at=11)
    items = trends.findings(runs)
    (q,) = [f for f in items if f.metric == "queries"]
    assert q.after.run_id == runs[-1].run_id and q.worse and q.change == 1.5
    assert trends.new_regressions(items, runs) == [q]


def test_a_timing_step_is_new_the_night_it_is_confirmed():
    runs = _history(n=12, step_at=9, factor=1.5)  # the third run after the step is the newest
    steps = [f for f in trends.new_regressions(trends.findings(runs), runs) if f.metric == "ratio"]
    assert len(steps) == 1 and steps[0].support[1] == cp.MIN_SIZE
    later = _history(n=13, step_at=9, factor=1.5)
    assert not [f for f in trends.new_regressions(trends.findings(later), later) if f.metric == "ratio"]


def test_dashboard_is_self_contained_and_links_steps_to_commits(tmp_path):
    from harness.present import dashboard

    runs = _history(step_at=6, factor=1.5)
    items = trends.findings(runs)
    page = dashboard.page({"n_plus_one": runs}, items)
    import re

    assert "<script" not in page and not re.search(r'(src|href)=["\']https?://', page)  # nothing fetched
    assert "<svg" in page and "step-books=10 · prefetch-6" in page
    assert f"{5:08x}..{6:08x}" in page and "<details>" in page and "django 5.2.9 → 6.0.1" in page


@pytest.mark.parametrize("cv", [0.01, 0.05])
def test_penalty_follows_the_noise(cv):
    """The same relative step is found in quiet series and needs more when the row is noisy."""
    quiet = cp.steps(series(3, step_at=30, step=0.05, cv=cv))
    assert bool(quiet) == (cv < 0.02)
