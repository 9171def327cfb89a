"""Execute a scenario: seed, verify each variant (untimed counters pass + checks), then time
the variants in interleaved rounds and summarise them as paired ratios to the baseline.

Per case:
  1. counters pass  — each variant's unit built with `ctx.counting=True`, run `case.units` times
                      under `execute_wrapper`: queries, rows, cache ops, results, SQL (+EXPLAIN);
  2. warm-up        — each timed unit run for `warmup_s`;
  3. calibration    — loops per sample so one sample lasts about `sample_s`;
  4. rounds         — A B C, B C A, C A B, … until `min_rounds` and the case's time budget are met
                      (or `max_rounds`); every round yields one sample per variant, so
                      variant/baseline within a round is a paired ratio that drift cannot bias;
  5. checks         — evaluated on the counters passes (and, for self-timed cases, on what the
                      measured samples recorded): a fast wrong answer is not a result.
The runner prints nothing; it reports progress through a callback and returns a `Result`.
"""
from __future__ import annotations

import datetime as dt
import gc
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import interrupts
from harness.errors import LabsError, StackError, UsageError, unknown
from harness.measure import counters as counting
from harness.measure import stats
from harness.measure.contract import (
    Case,
    Context,
    FixedLoops,
    Scenario,
    SelfTimed,
    Unit,
    Variant,
    VariantRun,
)
from harness.project.djangoenv import seed_lock
from harness.results.model import CaseResult, Result, VariantResult
from harness.stack import INSTALL_HINTS, StackInfo


@dataclass(frozen=True)
class Budget:
    """How long to measure. Rounds continue until both minimums are met."""

    min_rounds: int
    max_rounds: int
    case_s: float
    """Time budget for the timed rounds of one case."""
    sample_s: float
    """Target duration of one sample (a calibrated loop of units)."""
    warmup_s: float


BUDGETS = {
    "quick": Budget(min_rounds=15, max_rounds=400, case_s=1.2, sample_s=0.004, warmup_s=0.05),
    "full": Budget(min_rounds=40, max_rounds=5000, case_s=8.0, sample_s=0.02, warmup_s=0.5),
}


@dataclass(frozen=True)
class RunOptions:
    """Validated options of one `labs run`, independent of the CLI library."""

    scenarios: tuple[str, ...]
    profile: str = "quick"
    variants: tuple[str, ...] = ()
    stack: str = "embedded"
    results_dir: str = "results"
    seed: int = 42
    params: Mapping[str, str] = field(default_factory=dict)
    budget: Budget | None = None
    """Overrides the profile's budget (tests use tiny budgets)."""
    django_settings: str | None = None
    """A user's Django settings module to measure instead of the lab's own project."""


@dataclass(frozen=True)
class ProgressEvent:
    scenario: str
    phase: str  # seed | verify | measure | done
    case: str = ""
    case_index: int = 0
    cases: int = 0
    fraction: float = 0.0
    """Progress of the current case's timed rounds, 0..1."""


ProgressFn = Callable[[ProgressEvent], None]


def _noop(_: ProgressEvent) -> None:
    pass


def new_run_id(scenario: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{scenario}-{secrets.token_hex(2)}"


def select_variants(scenario: Scenario, wanted: Sequence[str], profile: str) -> set[str] | None:
    """Validate --variants; None means all. The baseline of each case is always kept."""
    if not wanted:
        return None
    known = scenario.variant_names(profile)
    for name in wanted:
        if name not in known:
            raise unknown(f"variant of {scenario.name}", name, known)
    return set(wanted)


def run_scenario(
    scenario: Scenario,
    opts: RunOptions,
    stack: StackInfo,
    *,
    progress: ProgressFn = _noop,
    clock: Callable[[], float] = time.perf_counter,
    env: Mapping[str, Any] | None = None,
    on_partial: Callable[[Result], None] | None = None,
) -> Result:
    """Run one scenario on an already-configured Django (see harness.project.djangoenv).

    On interruption or a dead service, `on_partial` receives the result so far (marked
    incomplete) before the exception propagates.
    """
    params = scenario.params_for(opts.profile, opts.params)
    chosen = select_variants(scenario, opts.variants, opts.profile)
    budget = opts.budget or BUDGETS[opts.profile]
    started = dt.datetime.now(dt.timezone.utc)
    run_id = new_run_id(scenario.name, started)
    components = stack.components
    timings: dict[str, float] = {}
    done: list[CaseResult] = []

    def partial(reason: str) -> Result:
        return Result(
            scenario=scenario.name, run_id=run_id, profile=opts.profile, complete=False,
            started_at=started.isoformat(), finished_at=_now(), title=scenario.title, reason=reason,
            env=dict(env or {}), params=params, cases=tuple(done), timings=timings,
            metrics=declarations(scenario, done),
        )

    # setup's context lives as long as the run: what it registers with on_close (servers,
    # pools) is closed however the run ends
    run_ctx = Context(params, opts.seed, opts.profile, components, artifacts=Path(opts.results_dir) / run_id)

    try:
        missing = stack.missing(scenario.requires)
        if missing:
            hints = "; ".join(INSTALL_HINTS.get(m, f"provide {m}") for m in missing)
            raise StackError(f"scenario {scenario.name} needs {', '.join(missing)}, "
                             f"which the {stack.kind} stack does not have", hint=hints)
        t0 = time.perf_counter()
        shared = None
        if scenario.setup is not None:
            progress(ProgressEvent(scenario.name, "seed"))
            with seed_lock():
                shared = scenario.setup(run_ctx)
        timings["seed_s"] = time.perf_counter() - t0
        cases = list(scenario.cases(params))
        t0 = time.perf_counter()
        for index, case in enumerate(cases):
            interrupts.check()
            assert_stack_alive(stack)
            case = case.without(chosen) if chosen is not None else case
            done.append(_run_case(scenario.name, case, index, len(cases), opts, components, budget,
                                  progress, clock, Path(opts.results_dir) / run_id, shared))
        timings["measure_s"] = time.perf_counter() - t0
        assert_stack_alive(stack)
    except KeyboardInterrupt:
        _close_run(scenario, run_ctx)
        if on_partial:
            on_partial(partial("interrupted"))
        raise
    except LabsError as exc:
        _close_run(scenario, run_ctx)
        if on_partial and not isinstance(exc, UsageError):
            on_partial(partial(exc.message))
        raise
    except Exception as exc:
        _close_run(scenario, run_ctx)
        dead = _dead_service(exc)
        if dead is None:
            if on_partial:
                on_partial(partial(f"crashed: {exc!r}"))
            raise
        if on_partial:
            on_partial(partial(dead))
        raise StackError(dead, hint="check the service's log; `labs stack status` shows a warm stack") from exc

    _close_run(scenario, run_ctx)
    result = Result(
        scenario=scenario.name, run_id=run_id, profile=opts.profile, complete=True,
        started_at=started.isoformat(), finished_at=_now(), title=scenario.title,
        env=dict(env or {}), params=params, cases=tuple(done), timings=timings,
        metrics=declarations(scenario, done),
    )
    if scenario.summarize is not None:
        result = replace(result, lesson=tuple(scenario.summarize(result)))
    progress(ProgressEvent(scenario.name, "done"))
    return result


SERVICE_NAMES = {"postgres": "PostgreSQL", "redis": "Redis/Valkey", "memcached": "memcached", "pgbouncer": "PgBouncer"}


def assert_stack_alive(stack: StackInfo) -> None:
    """Every service of the stack still accepts TCP connections, or a StackError naming it.

    Load scenarios would otherwise record a dead database as a slow, failing variant."""
    import urllib.parse

    from harness.stack import procs

    for component, url in stack.urls.items():
        parts = urllib.parse.urlsplit(url)
        if parts.hostname and parts.port and not procs.port_open(parts.port, parts.hostname, timeout_s=2.0):
            raise StackError(f"{SERVICE_NAMES.get(component, component)} is not answering any more "
                             f"({parts.hostname}:{parts.port}): it died or was stopped during the run",
                             hint="check its log; `labs stack status` shows a warm stack")


def _close_run(scenario: Scenario, run_ctx: Context) -> None:
    try:
        run_ctx.close()
    finally:
        if scenario.teardown is not None:
            scenario.teardown()


def declarations(scenario: Scenario, cases: Sequence[CaseResult]) -> dict[str, dict]:
    """The declarations of every counter and metric these cases carry (for the result)."""
    from harness.measure.metrics import undeclared

    declared = scenario.declared_metrics()
    out: dict[str, dict] = {}
    for case in cases:
        for v in case.variants.values():
            for name in v.counters:
                out.setdefault(name, (declared.get(name) or undeclared(name, True)).to_dict())
            for name in v.metrics:
                out.setdefault(name, (declared.get(name) or undeclared(name, False)).to_dict())
    for name, m in declared.items():  # declared ones the run did not reach are kept too
        if name in {n for c in cases for n in c.columns}:
            out.setdefault(name, m.to_dict())
    return dict(sorted(out.items()))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _dead_service(exc: BaseException) -> str | None:
    """A message naming the service when `exc` means a connection to it was lost."""
    import django.db
    import redis

    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for e in chain:
        if isinstance(e, (django.db.OperationalError, django.db.InterfaceError)):
            return f"lost the connection to PostgreSQL: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}"
        if isinstance(e, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            return f"lost the connection to Redis/Valkey: {e}"
    return None


def _run_case(
    scenario: str, case: Case, index: int, total: int, opts: RunOptions, components: frozenset[str],
    budget: Budget, progress: ProgressFn, clock: Callable[[], float], artifacts: Path | None = None,
    shared: Any = None,
) -> CaseResult:
    t_case = time.perf_counter()
    progress(ProgressEvent(scenario, "verify", case.name, index, total))
    runnable: list[Variant] = []
    skipped: dict[str, str] = {}
    for v in case.variants:
        missing = sorted(v.requires - components)
        if missing:
            skipped[v.name] = "needs " + ", ".join(missing) + ": " + "; ".join(
                INSTALL_HINTS.get(m, f"provide {m}") for m in missing)
        else:
            runnable.append(v)

    # 1. counters pass (untimed, instrumented)
    runs: dict[str, VariantRun] = {}
    explains: dict[str, tuple[dict, ...]] = {}
    for v in runnable:
        runs[v.name], statements = counting_pass(v, case, opts, components, artifacts, keep_sql=v.explain,
                                                 shared=shared)
        if v.explain:
            explains[v.name] = tuple(counting.explain(sql, params) for sql, params in distinct_sql(statements))

    # 2–4. timed, interleaved rounds
    timing = case.timing
    timed: dict[str, Unit] = {}
    contexts: dict[str, Context] = {}
    try:
        for v in runnable:
            ctx = Context(case.params, opts.seed, opts.profile, components, counting=False, artifacts=artifacts,
                          shared=shared)
            contexts[v.name] = ctx
            timed[v.name] = v.make(ctx)
        progress(ProgressEvent(scenario, "measure", case.name, index, total, 0.0))
        if isinstance(timing, SelfTimed):
            loops = {name: 1 for name in timed}
        elif isinstance(timing, FixedLoops):
            loops = {name: timing.loops for name in timed}
        else:
            for unit in timed.values():
                _warm_up(unit, budget.warmup_s, clock)
            loops = _calibrate_all(timed, budget, clock)
        # An op-stream case ends on whole laps of the stream, so every chunk of ops counts equally.
        lap = max(1, case.units // timing.loops) if isinstance(timing, FixedLoops) else 1
        case_budget = budget if timing.rounds is None else replace(budget, min_rounds=timing.rounds,
                                                                   max_rounds=timing.rounds)
        on_round = lambda frac: progress(ProgressEvent(scenario, "measure", case.name, index, total, frac))  # noqa: E731
        hooks = {name: (ctx.before_sample, ctx.after_sample) for name, ctx in contexts.items() if ctx._samples}
        if isinstance(timing, SelfTimed):
            samples = measure_self_timed(timed, case_budget, clock, on_round, hooks=hooks)
        else:
            samples = measure_rounds(timed, loops, case_budget, clock, on_round=on_round, round_multiple=lap,
                                     hooks=hooks)
    finally:
        for ctx in contexts.values():
            ctx.close()

    # 5. checks — after timing, so self-timed cases can check what the measured samples saw
    if isinstance(timing, SelfTimed):
        runs = {name: replace(run, metrics={**run.metrics, **contexts[name].metrics}) for name, run in runs.items()}
    outcomes = tuple(check.evaluate(runs) for check in case.checks)

    base = samples.get(case.baseline)
    variants: dict[str, VariantResult] = {}
    for v in case.variants:
        if v.name in skipped:
            variants[v.name] = VariantResult(v.name, skipped=skipped[v.name], description=v.description,
                                             series=v.series, x=v.x)
            continue
        s = samples[v.name]
        ratio, ci = (None, None)
        if base:
            summarize = stats.ratio_of_totals if timing.statistic == "ratio_of_totals" else stats.ratio_to_baseline
            ratio, ci = summarize(s, base)
        run = runs[v.name]
        metrics = dict(run.metrics)
        if isinstance(timing, SelfTimed):
            metrics.update(contexts[v.name].metrics)  # what the measured samples saw
        variants[v.name] = VariantResult(
            name=v.name, samples_s=tuple(s), loops=loops[v.name], median_s=stats.median(s),
            iqr_s=stats.iqr(s), ratio=ratio, ratio_ci95=ci,
            counters={k: run.per_unit(k) for k in sorted(run.counters)},
            metrics=metrics, explain=explains.get(v.name, ()), description=v.description,
            series=v.series, x=v.x,
        )
    rounds = len(base) if base else 0
    result = CaseResult(case.name, dict(case.params), case.baseline, variants, outcomes, rounds,
                        time.perf_counter() - t_case, case.title, tuple(case.columns), case.time_label,
                        timing={"mode": timing.mode, "statistic": timing.statistic},
                        charts=tuple(c.to_dict() for c in case.charts))
    if case.derive is not None:
        extra = case.derive(result)
        result = replace(result, variants={
            name: replace(v, metrics={**v.metrics, **extra.get(name, {})}) for name, v in variants.items()})
    return result


def counting_pass(v: Variant, case: Case, opts: RunOptions, components: frozenset[str],
                  artifacts: Path | None = None, keep_sql: bool = False,
                  shared: Any = None) -> tuple[VariantRun, list]:
    """One variant's untimed, instrumented pass: counters, results, metrics and (optionally) SQL."""
    ctx = Context(case.params, opts.seed, opts.profile, components, counting=True, artifacts=artifacts,
                  shared=shared)
    try:
        unit = v.make(ctx)
        with counting.count_queries(ctx.counters, keep_sql=keep_sql) as qc:
            results = [unit() for _ in range(case.units)]
    finally:
        ctx.close()
    run = VariantRun(v.name, case.units, dict(ctx.counters), results, dict(ctx.metrics),
                     [s for s, _ in qc.statements])
    return run, list(qc.statements)


def distinct_sql(statements: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    seen, out = set(), []
    for sql, params in statements:
        key = counting.normalize_sql(sql)
        if key not in seen:
            seen.add(key)
            out.append((sql, params))
    return out


def _warm_up(unit: Unit, seconds: float, clock: Callable[[], float]) -> None:
    end = clock() + seconds
    unit()
    while clock() < end:
        unit()


def _calibrate_all(units: Mapping[str, Unit], budget: Budget, clock: Callable[[], float]) -> dict[str, int]:
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


def measure_self_timed(units: Mapping[str, Unit], budget: Budget, clock: Callable[[], float],
                       on_round: Callable[[float], None] = lambda _f: None,
                       hooks: Mapping[str, tuple[Callable[[], Any], Callable[[], Any]]] | None = None,
                       ) -> dict[str, list[float]]:
    """Interleaved, rotated rounds of units that return their own sample (seconds)."""
    names = list(units)
    samples: dict[str, list[float]] = {n: [] for n in names}
    start = clock()
    rounds = 0
    while names:
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
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


def measure_rounds(
    units: Mapping[str, Unit],
    loops: Mapping[str, int],
    budget: Budget,
    clock: Callable[[], float],
    on_round: Callable[[float], None] = lambda _f: None,
    round_multiple: int = 1,
    hooks: Mapping[str, tuple[Callable[[], Any], Callable[[], Any]]] | None = None,
) -> dict[str, list[float]]:
    """Interleaved rounds, rotating the order each round; returns seconds per unit per round.

    Stops after `min_rounds` once the time budget is spent (or at `max_rounds`), and only on a
    multiple of `round_multiple` rounds (whole laps of an op stream)."""
    names = list(units)
    samples: dict[str, list[float]] = {n: [] for n in names}
    if not names:
        return samples
    start = clock()
    gc_was_enabled = gc.isenabled()
    rounds = 0
    try:
        while True:
            shift = rounds % len(names)
            order = names[shift:] + names[:shift]
            for name in order:
                unit, n = units[name], loops[name]
                before, after = (hooks or {}).get(name, (None, None))
                if before:
                    before()
                # A collection starting inside one variant's sample would bill it for garbage
                # others made: collect between samples, never during.
                gc.collect(0)
                gc.disable()
                t0 = clock()
                for _ in range(n):
                    unit()
                t1 = clock()
                if gc_was_enabled:
                    gc.enable()
                if after:
                    after()
                samples[name].append((t1 - t0) / n)
            rounds += 1
            interrupts.check()
            elapsed = clock() - start
            on_lap = rounds % round_multiple == 0
            if on_lap and (rounds >= budget.max_rounds or (rounds >= budget.min_rounds and elapsed >= budget.case_s)):
                break
            # Both the minimum rounds and the time budget must be met: progress is the lagging one.
            on_round(min(1.0, elapsed / budget.case_s if budget.case_s > 0 else 1.0,
                         rounds / max(budget.min_rounds, 1)))
    finally:
        if gc_was_enabled:
            gc.enable()
    on_round(1.0)
    return samples
