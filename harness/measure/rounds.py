"""The timing loops: warm-up, calibration, interleaved rounds (pure of scenarios and Django).

Every function takes a `clock=` so tests drive them with a fake clock.

Order within a round follows a Williams design (harness.measure.stats.round_orders): every
variant follows every other equally often, so what one variant leaves behind (a warm cache, a
dirty heap) weighs on all alike; a plain rotation puts A before B in every round but one.

Garbage collection: by default the collector runs during samples, as it does in production; the
young generations are collected between samples so each starts from the same collector state.
`gc=False` (--no-gc) disables it inside samples, for micro-comparisons that want it out.
"""
from __future__ import annotations

import gc as gcmodule
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness import interrupts

Unit = Callable[[], Any]
Hooks = Mapping[str, tuple[Callable[[], Any], Callable[[], Any]]]


@dataclass(frozen=True)
class Budget:
    """How long to measure. Rounds continue until both minimums are met."""

    min_rounds: int
    max_rounds: int
    case_s: float
    """Time budget for the timed rounds of one case (the whole run's, shared by its processes)."""
    sample_s: float
    """Target duration of one sample (a calibrated loop of units)."""
    warmup_s: float
    processes: int = 1
    """Fresh worker processes the rounds are spread over (0: measure in this process)."""


def warm_up(unit: Unit, seconds: float, clock: Callable[[], float]) -> None:
    end = clock() + seconds
    unit()
    while clock() < end:
        unit()


def calibrate_all(units: Mapping[str, Unit], budget: Budget, clock: Callable[[], float]) -> dict[str, int]:
    """Loops per variant so that samples in a round last about as long as each other.

    A paired ratio of a 135 ms sample to a 2 ms one compares a long stretch of machine noise
    with a short one; so the target is raised towards the slowest unit's time (up to 5× the
    profile's `sample_s`), which makes the short samples long enough to average out.
    """
    per_unit = {name: _unit_time(unit, clock) for name, unit in units.items()}
    target = min(max(budget.sample_s, max(per_unit.values(), default=0.0)), budget.sample_s * 5)
    return {name: calibrate(unit, target, clock) for name, unit in units.items()}


def _unit_time(unit: Unit, clock: Callable[[], float]) -> float:
    t0 = clock()
    unit()
    return clock() - t0


def calibrate(unit: Unit, sample_s: float, clock: Callable[[], float], max_loops: int = 1_000_000) -> int:
    """Loops per sample so that one sample lasts about `sample_s` (at least 1)."""
    loops = 1
    while True:
        t0 = clock()
        for _ in range(loops):
            unit()
        elapsed = clock() - t0
        if elapsed >= sample_s / 4 or loops >= max_loops:
            break
        loops *= 4 if elapsed < sample_s / 40 else 2
    per_unit = elapsed / loops if elapsed > 0 else sample_s
    return max(1, min(max_loops, round(sample_s / per_unit))) if per_unit > 0 else loops


def _orders(names: Sequence[str], order_seed: int | None) -> list[list[str]]:
    from harness.measure.stats import round_orders

    if order_seed is None:  # a plain rotation (kept for callers that ask for it)
        return [list(names[i:]) + list(names[:i]) for i in range(len(names))] or [[]]
    return round_orders(names, order_seed)


def measure_self_timed(units: Mapping[str, Unit], budget: Budget, clock: Callable[[], float],
                       on_round: Callable[[float], None] = lambda _f: None, hooks: Hooks | None = None,
                       order_seed: int | None = None) -> dict[str, list[float]]:
    """Interleaved rounds of units that return their own sample (seconds)."""
    names = list(units)
    samples: dict[str, list[float]] = {n: [] for n in names}
    orders = _orders(names, order_seed)
    start = clock()
    rounds = 0
    while names:
        for name in orders[rounds % len(orders)]:
            interrupts.check()
            before, after = (hooks or {}).get(name, (None, None))
            if before:
                before()
            try:
                samples[name].append(float(units[name]()))
            finally:
                if after:
                    after()
        rounds += 1
        elapsed = clock() - start
        if rounds >= budget.max_rounds or (rounds >= budget.min_rounds and elapsed >= budget.case_s):
            break
        on_round(min(1.0, rounds / max(budget.min_rounds, 1)))
    on_round(1.0)
    return samples


ROUND_GATE: Callable[[], bool] | None = None
"""Lockstep (harness.measure.commits): called before every round, it blocks until the parent lets
this process run one round (True) or ends the case's rounds (False). Two processes — the base
commit's and the candidate's — then take turns round by round, so both see the same machine."""


def measure_rounds(
    units: Mapping[str, Unit],
    loops: Mapping[str, int],
    budget: Budget,
    clock: Callable[[], float],
    on_round: Callable[[float], None] = lambda _f: None,
    round_multiple: int = 1,
    hooks: Hooks | None = None,
    order_seed: int | None = None,
    gc: bool = True,
) -> dict[str, list[float]]:
    """Interleaved rounds in a balanced order; returns seconds per unit per round.

    Stops after `min_rounds` once the time budget is spent (or at `max_rounds`), and only on a
    multiple of `round_multiple` rounds (whole laps of an op stream)."""
    names = list(units)
    samples: dict[str, list[float]] = {n: [] for n in names}
    if not names:
        return samples
    orders = _orders(names, order_seed)
    start = clock()
    was_enabled = gcmodule.isenabled()
    rounds = 0
    gate = ROUND_GATE
    try:
        while True:
            if gate is not None and not gate():
                break  # lockstep: the parent decides when the case has enough rounds
            for name in orders[rounds % len(orders)]:
                unit, n = units[name], loops[name]
                before, after = (hooks or {}).get(name, (None, None))
                if before:
                    before()
                # every sample starts from the same collector state; with gc=False a collection
                # never starts inside one variant's sample to bill it for garbage others made
                gcmodule.collect(1)
                if not gc:
                    gcmodule.disable()
                t0 = clock()
                for _ in range(n):
                    unit()
                t1 = clock()
                if not gc and was_enabled:
                    gcmodule.enable()
                if after:
                    after()
                samples[name].append((t1 - t0) / n)
            rounds += 1
            interrupts.check()
            elapsed = clock() - start
            on_lap = rounds % round_multiple == 0
            if gate is None and on_lap and (rounds >= budget.max_rounds or
                                            (rounds >= budget.min_rounds and elapsed >= budget.case_s)):
                break
            # Both the minimum rounds and the time budget must be met: progress is the lagging one.
            on_round(min(1.0, elapsed / budget.case_s if budget.case_s > 0 else 1.0,
                         rounds / max(budget.min_rounds, 1)))
    finally:
        if was_enabled:
            gcmodule.enable()
    on_round(1.0)
    return samples
