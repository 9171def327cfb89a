"""An interrupt Python swallows (raised while a finalizer runs) is still honoured."""
from __future__ import annotations

import signal
import sys
import time

import pytest

from harness import interrupts
from harness.measure.runner import Budget, measure_rounds


class _InterruptedWhileFinalized:
    def __del__(self):  # the signal lands while Python runs a finalizer: it can only print and drop it
        interrupts.handler(signal.SIGTERM, None)


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setattr(interrupts, "_requested", False)
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", interrupts._unraisable(reported.append))
    return reported


def test_swallowed_interrupt_is_raised_again_and_not_printed(hook):
    _InterruptedWhileFinalized()  # collected at once: KeyboardInterrupt raised inside __del__
    assert hook == [], "a swallowed interrupt must not be printed as 'Exception ignored …'"
    assert interrupts.requested()
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()


def test_other_unraisable_errors_still_reach_the_hook(hook):
    class Broken:
        def __del__(self):
            raise ValueError("boom")

    Broken()
    assert len(hook) == 1 and isinstance(hook[0].exc_value, ValueError)
    interrupts.check()  # nothing was requested: no interrupt


def test_measuring_stops_at_the_next_round_after_a_swallowed_interrupt(hook):
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1
        if calls["a"] == 5:
            _InterruptedWhileFinalized()

    def b():
        calls["b"] += 1

    budget = Budget(min_rounds=1000, max_rounds=1000, case_s=60.0, sample_s=0.001, warmup_s=0.0)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        measure_rounds({"a": a, "b": b}, {"a": 1, "b": 1}, budget, time.perf_counter)
    assert calls["a"] == 5 and calls["b"] <= 5 and time.perf_counter() - t0 < 5
