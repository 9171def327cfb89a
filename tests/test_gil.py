"""gil at tiny sizes on the real stack: same answers from every executor; derived metrics."""
from __future__ import annotations

import pytest

from harness.measure.runner import RunOptions, run_scenario
from harness.project import registry
from harness.results.model import CaseResult, Result, VariantResult
from scenarios import gil, gil_tasks


@pytest.fixture(scope="module")
def result(stack, tiny_budget):
    opts = RunOptions(("gil",), params={"workloads": "cpu_python,data,io_postgres,io_redis", "workers": "2,3",
                                        "tasks": "6", "chunk_kib": "64"}, budget=tiny_budget)
    return run_scenario(registry.get("gil"), opts, stack)


@pytest.mark.stack
def test_every_executor_returns_the_sequential_answers(result):
    assert result.ok, [(c.variant, c.name, c.detail) for c in result.checks if not c.ok]
    by = {c.name: c for c in result.cases}
    assert set(by) == {"cpu_python", "data", "io_postgres", "io_redis"}
    assert {"threads_2", "processes_2", "shared_memory_2"} <= set(by["data"].variants)
    assert {"asyncio_2", "asyncio_3"} <= set(by["io_postgres"].variants)
    assert "asyncio_2" not in by["cpu_python"].variants  # asyncio only where there is waiting
    same = [c for c in result.checks if c.name == "same result as sequential"]
    assert len(same) == sum(len(c.variants) - 1 for c in result.cases)


@pytest.mark.stack
def test_metrics_recorded(result):
    for case in result.cases:
        for v in case.variants.values():
            assert v.metrics["speedup"] > 0 and v.metrics["efficiency"] > 0
            assert "cpu_s_per_unit" in v.metrics
            if v.name.startswith("processes"):
                assert v.metrics["start_s"] > 0
    assert "GIL" in result.cases[0].title
    assert any("GIL enabled" in line or "GIL disabled" in line for line in result.lesson)


def test_efficiency_from_synthetic_timings(monkeypatch):
    monkeypatch.setattr(gil, "CORES", 2)
    variants = {
        "sequential": VariantResult("sequential", ratio=1.0),
        "threads_4": VariantResult("threads_4", ratio=0.5, series="threads", x=4),   # 2× on 2 usable cores: 100 %
        "processes_2": VariantResult("processes_2", ratio=0.8, series="processes", x=2),  # 1.25× on 2 cores: 62.5 %
        "asyncio_8": VariantResult("asyncio_8", ratio=0.125, series="asyncio", x=8),  # 8× but min(8, 2) = 2: 400 %
    }
    derived = gil.derive(CaseResult("w", {}, "sequential", variants))
    assert derived["sequential"] == {"speedup": 1.0, "efficiency": 1.0}
    assert derived["threads_4"] == {"speedup": 2.0, "efficiency": 1.0}
    assert derived["processes_2"] == {"speedup": 1.25, "efficiency": 0.625}
    assert derived["asyncio_8"]["efficiency"] == 4.0


def test_tasks_are_deterministic():
    assert gil_tasks.cpu_python(3, 200) == gil_tasks.cpu_python(3, 200) != gil_tasks.cpu_python(4, 200)
    assert gil_tasks.make_blob(1000, 2) == gil_tasks.make_blob(1000, 2)
    assert gil_tasks.cpu_c(1, 10) == gil_tasks.cpu_c(1, 10)


def test_gil_detection_recorded_in_env():
    from harness.project import envinfo

    env = envinfo.collect({"kind": "test"})
    assert isinstance(env["gil_enabled"], bool)
    assert env["gil_enabled"] == gil.gil_enabled()


def test_speedup_chart_has_the_ideal_line(monkeypatch):
    from harness.present import charts

    variants = {n: VariantResult(n, ratio=r, metrics={"speedup": 1 / r}, series=s, x=x)
                for n, r, s, x in (("sequential", 1.0, "", None), ("threads_2", 0.9, "threads", 2),
                                   ("threads_4", 0.95, "threads", 4), ("processes_2", 0.55, "processes", 2),
                                   ("processes_4", 0.52, "processes", 4))}
    case = CaseResult("cpu_python", {}, "sequential", variants, charts=(gil.SPEEDUP_CHART.to_dict(),))
    result = Result("gil", "r", "quick", True, "2026", env={"cpus": 2}, cases=(case,))
    svg = charts.svg(charts.declared_figure(result, case, case.charts[0]))
    assert 'id="ideal' in svg and 'id="series-threads' in svg and 'id="series-processes' in svg
