"""Export a run for other tools: pytest-benchmark's JSON layout (read by `pytest-benchmark
compare` and Bencher's adapter)."""
from __future__ import annotations

import json
from typing import Any

from harness.results.model import Result

FORMATS = ("pytest-benchmark",)


def render(result: Result, fmt: str) -> str:
    if fmt == "pytest-benchmark":
        return json.dumps(to_pytest_benchmark(result), indent=2, default=str)
    raise ValueError(fmt)


def to_pytest_benchmark(result: Result) -> dict[str, Any]:
    """The result in pytest-benchmark's JSON layout (what Bencher and pytest-benchmark compare read):
    one benchmark per case × variant, its `data` the interleaved per-round samples."""
    import statistics

    benchmarks = []
    for case in result.cases:
        for v in case.variants.values():
            if v.skipped or not v.samples_s:
                continue
            data = list(v.samples_s)
            q = statistics.quantiles(data, n=4) if len(data) > 1 else [data[0]] * 3
            mean = statistics.fmean(data)
            iqr = q[2] - q[0]
            benchmarks.append({
                "group": f"{result.scenario}:{case.name}",
                "name": f"{v.name}[{case.name}]",
                "fullname": f"labs::{result.scenario}::{case.name}::{v.name}",
                "params": dict(case.params) | {"variant": v.name},
                "param": f"{case.name}-{v.name}",
                "extra_info": {"counters": v.counters, "ratio_to_baseline": v.ratio,
                               "ratio_ci95": list(v.ratio_ci95) if v.ratio_ci95 else None,
                               "checks_ok": all(c.ok or c.skipped for c in case.checks if c.variant == v.name),
                               "interleaved_rounds": case.rounds, "baseline": case.baseline},
                "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": case.rounds,
                            "max_time": None, "min_time": None, "warmup": True},
                "stats": {"min": min(data), "max": max(data), "mean": mean,
                          "stddev": statistics.stdev(data) if len(data) > 1 else 0.0, "rounds": len(data),
                          "median": statistics.median(data), "iqr": iqr, "q1": q[0], "q3": q[2],
                          "iqr_outliers": sum(1 for x in data if x < q[0] - 1.5 * iqr or x > q[2] + 1.5 * iqr),
                          "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": min(data), "hd15iqr": max(data),
                          "ops": 1.0 / mean if mean else 0.0, "total": sum(data) * v.loops, "data": data,
                          "iterations": v.loops},
            })
    env = result.env
    return {
        "machine_info": {"node": env.get("hostname"), "processor": env.get("cpu_model"), "machine": env.get("machine"),
                         "python_implementation": env.get("python_impl"), "python_version": env.get("python"),
                         "cpu": {"count": env.get("cpus"), "brand_raw": env.get("cpu_model")}},
        "commit_info": {"id": env.get("git_sha"), "dirty": env.get("git_dirty"), "project": "perf-lab"},
        "benchmarks": benchmarks,
        "datetime": result.started_at,
        "version": "5.1.0",
    }
