"""The scenario contract: lifecycle (on_close, setup's shared value), timing modes, declared
metrics — and scenarios written against the old contract still running."""
from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from harness.errors import LabsDeprecationWarning
from harness.measure.runner import RunOptions, run_scenario
from harness.results import compare as cmp
from harness.results.model import CaseResult, Result, VariantResult
from harness.scenario import (Calibrated, Case, Context, FixedLoops, Metric, Scenario, SelfTimed, Variant,
                              metric_check, same_result_as)


def test_on_close_runs_everything_in_reverse_even_when_one_fails():
    ctx = Context({}, 0, "quick", frozenset())
    calls = []
    ctx.on_close(lambda: calls.append("first"))

    @ctx.on_close
    def boom():
        calls.append("second")
        raise RuntimeError("second failed")
    ctx.on_close(lambda: calls.append("third"))
    with pytest.raises(RuntimeError, match="second failed"):
        ctx.close()
    assert calls == ["third", "second", "first"]
    ctx.close()  # closing twice closes nothing twice
    assert calls == ["third", "second", "first"]


def test_the_old_close_key_still_works_with_a_warning():
    ctx = Context({}, 0, "quick", frozenset())
    calls = []
    ctx.on_close(lambda: calls.append("registered"))
    ctx.state["close"] = lambda: calls.append("legacy")
    with pytest.warns(LabsDeprecationWarning, match="on_close"):
        ctx.close()
    assert calls == ["legacy", "registered"]


def test_old_case_fields_become_timing_modes():
    v = (Variant("a", lambda ctx: lambda: 1),)
    with pytest.warns(LabsDeprecationWarning, match="timing="):
        assert Case("c", {}, "a", v, self_timed=True, rounds=3).timing == SelfTimed(3)
    with pytest.warns(LabsDeprecationWarning):
        assert Case("c", {}, "a", v, fixed_loops=10).timing == FixedLoops(10)
    with pytest.warns(LabsDeprecationWarning):
        assert Case("c", {}, "a", v, rounds=4).timing == Calibrated(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Case("c", {}, "a", v).timing == Calibrated()
    assert FixedLoops(5).statistic == "ratio_of_totals" and Calibrated().statistic == "median_ratio"


def test_old_module_names_import_with_a_warning():
    for old in ("harness.runner", "harness.report"):
        sys.modules.pop(old, None)
    with pytest.warns(LabsDeprecationWarning, match="harness.measure.runner"):
        old = importlib.import_module("harness.runner")
    import harness.measure.runner as new

    assert old is new
    with pytest.warns(LabsDeprecationWarning):
        assert importlib.import_module("harness.report").fmt_speed(0.5, None)[0] == "2× faster"


def test_metric_declarations_are_validated():
    with pytest.raises(ValueError, match="kind"):
        Metric("x", kind="sometimes")
    with pytest.raises(ValueError, match="better"):
        Metric("x", better="up")
    with pytest.raises(ValueError, match="declared twice"):
        Scenario("s", "t", frozenset(), {"quick": {}, "full": {}}, lambda p: [],
                 metrics=(Metric("a"), Metric("a")))


def _result(metric_value, declared: dict, counter=None) -> Result:
    v = VariantResult("fast", samples_s=(1.0, 1.0, 1.0), median_s=1.0, ratio=0.5,
                      metrics={"score": metric_value}, counters=counter or {})
    base = VariantResult("slow", samples_s=(2.0, 2.0, 2.0), median_s=2.0, ratio=1.0)
    case = CaseResult("c", {}, "slow", {"slow": base, "fast": v}, rounds=3)
    return Result("user", "20260101T000000Z-user-0000", "quick", True, "2026-01-01", cases=(case,),
                  env={"cpus": 2, "cpu_model": "x"}, metrics=declared)


@pytest.mark.parametrize("better, new, verdict", [
    ("higher", 0.8, "worse"), ("higher", 0.95, "better"), ("lower", 0.95, "worse"), ("lower", 0.8, "better"),
    (None, 0.8, "changed"),
])
def test_compare_reads_the_direction_each_metric_declares(better, new, verdict):
    declared = {"score": Metric("score", better=better, kind="exact").to_dict()}
    c = cmp.compare("base", [_result(0.9, declared)], "new", [_result(new, declared)])
    row = next(r for r in c.rows if r.metric == "score")
    assert row.verdict == verdict
    assert (row in c.regressions) == (verdict in {"worse", "changed"})


def test_info_metrics_and_tolerances_are_not_verdicts():
    info = {"score": Metric("score").to_dict()}
    c = cmp.compare("base", [_result(0.9, info)], "new", [_result(0.1, info)])
    assert not [r for r in c.rows if r.metric == "score"]
    tol = {"pg_buffers": Metric("pg_buffers", kind="exact", tolerance=0.1).to_dict()}
    c = cmp.compare("base", [_result(1, tol, {"pg_buffers": 100.0})], "new", [_result(1, tol, {"pg_buffers": 108.0})])
    assert next(r for r in c.rows if r.metric == "pg_buffers").verdict == "unchanged"
    c = cmp.compare("base", [_result(1, tol, {"pg_buffers": 100.0})], "new", [_result(1, tol, {"pg_buffers": 120.0})])
    assert next(r for r in c.rows if r.metric == "pg_buffers").verdict == "worse"


# -- on the real stack ---------------------------------------------------------------------------
class _Pool:
    def __init__(self):
        self.open, self.handed = True, 0

    def close(self):
        self.open = False


def _lifecycle_scenario(pools: list, closed: list, fail_in_case: bool = False) -> Scenario:
    def setup(ctx):
        pool = _Pool()
        pools.append(pool)
        ctx.on_close(pool.close)
        return pool

    def make(ctx):
        ctx.shared.handed += 1
        ctx.on_close(lambda: closed.append(ctx.counting))
        if fail_in_case:
            raise RuntimeError("the factory failed")
        return lambda: ctx.shared.open

    case = Case("c", {}, "a", (Variant("a", make), Variant("b", make)), (same_result_as("b", "a"),),
                timing=Calibrated(rounds=3))
    return Scenario("lifecycle", "t", frozenset({"postgres"}), {"quick": {}, "full": {}}, lambda p: [case],
                    setup=setup)


def test_setup_value_reaches_every_factory_and_is_closed_at_the_end(stack, tiny_budget):
    pools, closed = [], []
    result = run_scenario(_lifecycle_scenario(pools, closed), RunOptions(("lifecycle",), budget=tiny_budget), stack)
    assert result.ok
    (pool,) = pools
    assert pool.handed == 4  # two variants × (counting pass + timed pass)
    assert sorted(closed) == [False, False, True, True]  # every factory's on_close ran
    assert not pool.open  # setup's on_close ran when the run ended


def test_setup_value_is_closed_when_the_run_fails(stack, tiny_budget):
    pools, closed = [], []
    with pytest.raises(RuntimeError, match="the factory failed"):
        run_scenario(_lifecycle_scenario(pools, closed, fail_in_case=True), RunOptions(("lifecycle",),
                     budget=tiny_budget), stack)
    assert not pools[0].open
    assert closed == [True]  # the failed factory's context was closed too


def test_a_scenario_written_against_the_old_contract_still_runs(stack, tiny_budget):
    torn_down = []

    def make(ctx):
        ctx.metrics["calls"] = 0

        def unit():
            ctx.metrics["calls"] += 1
            return 42
        ctx.state["close"] = lambda: ctx.metrics.update(closed=True)
        return unit

    with pytest.warns(LabsDeprecationWarning):
        old = Scenario(
            "old_api", "written before timing modes", frozenset({"postgres"}), {"quick": {}, "full": {}},
            lambda p: [Case("c", {}, "a", (Variant("a", make), Variant("b", make)),
                            (same_result_as("b", "a"), metric_check("b", "closed", lambda v: v is True, "closed")),
                            rounds=3)],
            teardown=lambda: torn_down.append(True))
        result = run_scenario(old, RunOptions(("old_api",), budget=tiny_budget), stack)
    assert result.ok, [(c.name, c.detail) for c in result.checks]
    assert result.cases[0].rounds == 3 and result.cases[0].timing["mode"] == "calibrated"
    assert torn_down == [True]
