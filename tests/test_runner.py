"""The runner's timing logic with a fake clock (no stack needed)."""
from __future__ import annotations

import pytest

from harness.measure.runner import Budget, calibrate, measure_rounds


class FakeClock:
    """Time advances only when a unit of work runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def unit(self, cost_s: float, log: list[str] | None = None, name: str = ""):
        def work() -> None:
            self.now += cost_s
            if log is not None:
                log.append(name)
        return work


def test_calibrate_hits_the_target_sample_length():
    clock = FakeClock()
    assert calibrate(clock.unit(0.0001), sample_s=0.01, clock=clock) == 100
    assert calibrate(clock.unit(0.5), sample_s=0.01, clock=clock) == 1


def test_rounds_are_interleaved_and_rotated():
    clock, log = FakeClock(), []
    units = {n: clock.unit(0.001, log, n) for n in ("a", "b", "c")}
    budget = Budget(min_rounds=3, max_rounds=3, case_s=0.0, sample_s=0.001, warmup_s=0.0)
    samples = measure_rounds(units, {"a": 1, "b": 1, "c": 1}, budget, clock)
    assert log == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert samples["a"] == pytest.approx([0.001] * 3)


def test_rounds_stop_on_budget_after_minimum():
    clock = FakeClock()
    units = {"slow": clock.unit(0.1), "fast": clock.unit(0.01)}
    budget = Budget(min_rounds=2, max_rounds=1000, case_s=1.0, sample_s=0.0, warmup_s=0.0)
    samples = measure_rounds(units, {"slow": 1, "fast": 1}, budget, clock)
    # each round costs 0.11 s: the 1 s budget is met after 10 rounds
    assert len(samples["slow"]) == 10
    budget = Budget(min_rounds=20, max_rounds=1000, case_s=0.0, sample_s=0.0, warmup_s=0.0)
    assert len(measure_rounds(units, {"slow": 1, "fast": 1}, budget, clock)["fast"]) == 20


def test_samples_are_per_unit():
    clock = FakeClock()
    budget = Budget(min_rounds=1, max_rounds=1, case_s=0.0, sample_s=0.0, warmup_s=0.0)
    samples = measure_rounds({"x": clock.unit(0.002)}, {"x": 50}, budget, clock)
    assert samples["x"] == pytest.approx([0.002])


def test_progress_reaches_one():
    clock = FakeClock()
    seen: list[float] = []
    budget = Budget(min_rounds=4, max_rounds=4, case_s=0.0, sample_s=0.0, warmup_s=0.0)
    measure_rounds({"x": clock.unit(0.001)}, {"x": 1}, budget, clock, on_round=seen.append)
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
