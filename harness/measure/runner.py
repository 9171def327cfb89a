"""Execute a scenario in this process: seed, verify each variant (untimed counters pass + checks),
then time the variants in interleaved rounds and summarise them as paired ratios to the baseline.

Per case:
  1. counters pass  — each variant's unit built with `ctx.counting=True`, run `case.units` times
                      under `execute_wrapper`: queries, rows, cache ops, GC collections, what
                      PostgreSQL did (buffers, WAL records), results, SQL (+EXPLAIN);
  2. warm-up        — each timed unit run for `warmup_s`;
  3. calibration    — loops per sample so one sample lasts about `sample_s` (or the loops another
                      process calibrated, passed in: every process then times the same thing);
  4. rounds         — in a Williams order until `min_rounds` and the case's time budget are met
                      (or `max_rounds`); every round yields one sample per variant, so
                      variant/baseline within a round is a paired ratio that drift cannot bias;
  5. checks         — evaluated on the counters passes (and, for self-timed cases, on what the
                      measured samples recorded): a fast wrong answer is not a result.
A run spread over worker processes calls this once per process (harness.measure.workers); only
process 0 does steps 1 and 5. The runner prints nothing; it reports progress through a callback.
"""
from __future__ import annotations

import datetime as dt
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
from harness.measure.contract import Case, Context, FixedLoops, Scenario, SelfTimed, Unit, Variant, VariantRun
from harness.measure.deadline import DEFAULT_CASE_TIMEOUT_S, CaseTimedOut, deadline
from harness.measure.rounds import (Budget, calibrate, calibrate_all, measure_rounds,  # noqa: F401
                                    measure_self_timed, warm_up)
from harness.measure.summary import merge_processes, with_ratios  # noqa: F401
from harness.project.djangoenv import seed_lock
from harness.results.model import CaseResult, Result, VariantResult
from harness.stack import INSTALL_HINTS, StackInfo

BUDGETS = {
    "quick": Budget(min_rounds=15, max_rounds=400, case_s=1.2, sample_s=0.004, warmup_s=0.05, processes=1),
    "nightly": Budget(min_rounds=30, max_rounds=3000, case_s=6.0, sample_s=0.01, warmup_s=0.05, processes=5),
    "full": Budget(min_rounds=40, max_rounds=5000, case_s=8.0, sample_s=0.02, warmup_s=0.2, processes=5),
}
"""Per profile: rounds and time for the whole run (shared by its processes), and how many fresh
processes it is spread over."""


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
    processes: int | None = None
    """Worker processes to spread the rounds over (None: the scenario's or the profile's choice;
    0: measure in this process)."""
    gc: bool = True
    """The garbage collector runs during timed samples, as in production (False: --no-gc)."""
    case_timeout_s: float = DEFAULT_CASE_TIMEOUT_S
    """A case still running after this long is dropped as timed out; the run goes on (0: never)."""


@dataclass(frozen=True)
class ProgressEvent:
    scenario: str
    phase: str  # seed | verify | measure | done
    case: str = ""
    case_index: int = 0
    cases: int = 0
    fraction: float = 0.0
    """Progress of the current case's timed rounds, 0..1."""
    process: int = 0
    processes: int = 1


ProgressFn = Callable[[ProgressEvent], None]


def _noop(_: ProgressEvent) -> None:
    pass


def new_run_id(scenario: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{scenario}-{secrets.token_hex(2)}"


def select_variants(scenario: Scenario, wanted: Sequence[str], profile: str) -> set[str] | None:
    """Validate --variants; None means all. A case that has none of them is left out; in a case
    that has one, its baseline is kept (a ratio needs it)."""
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
    run_id: str | None = None,
    process: int = 0,
    loops: Mapping[str, Mapping[str, int]] | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
    summarize: bool = True,
) -> Result:
    """Run one scenario in this process, on an already-configured Django (harness.project.djangoenv).

    On interruption or a dead service, `on_partial` receives the result so far (marked
    incomplete) before the exception propagates. As one worker of a multi-process run: `process`
    is its number (only process 0 runs the counters pass and the checks), `loops` the loops
    process 0 calibrated (case -> variant -> loops), `on_case` receives each case as it finishes,
    and `summarize=False` leaves the lesson to the parent that merges the processes.
    """
    params = scenario.params_for(opts.profile, opts.params)
    chosen = select_variants(scenario, opts.variants, opts.profile)
    budget = opts.budget or BUDGETS[opts.profile]
    started = time.time()
    run_id = run_id or new_run_id(scenario.name)
    components = stack.components
    timings: dict[str, float] = {}
    done: list[CaseResult] = []
    timed_out: list[str] = []

    def partial(reason: str) -> Result:
        return finish_result(scenario, opts, run_id, started, done, env, timings, False, reason, summarize=False)

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
        cases = [c if chosen is None else c.without(chosen) for c in scenario.cases(params)
                 if chosen is None or chosen & {v.name for v in c.variants}]
        run_ctx.planned = frozenset(v.name for c in cases for v in c.variants)
        shared = None
        if scenario.setup is not None:
            progress(ProgressEvent(scenario.name, "seed"))
            with seed_lock():
                shared = scenario.setup(run_ctx)
        timings["seed_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for index, case in enumerate(cases):
            interrupts.check()
            assert_stack_alive(stack)
            role = Role(process, (loops or {}).get(case.name), _order_seed(opts.seed, index, process))
            try:
                with deadline(opts.case_timeout_s, f"case {case.name} of {scenario.name}"):
                    result = _run_case(scenario.name, case, index, len(cases), opts, components, budget,
                                       progress, clock, Path(opts.results_dir) / run_id, shared, role)
            except CaseTimedOut as exc:
                timed_out.append(exc.message)
                _reset_connections()  # the variant may have left a transaction open mid-statement
                continue
            done.append(result)
            if on_case is not None:
                on_case(result)
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
    if timed_out:  # the other cases are kept; the run is not complete without these
        result = finish_result(scenario, opts, run_id, started, done, env, timings, False, "; ".join(timed_out),
                               summarize=False)
    else:
        result = finish_result(scenario, opts, run_id, started, done, env, timings, True, summarize=summarize)
    progress(ProgressEvent(scenario.name, "done"))
    return result


def _reset_connections() -> None:
    try:
        from django.db import connections

        for conn in connections.all(initialized_only=True):
            conn.close()
    except Exception:  # noqa: BLE001 - Django not configured, or the connection already gone
        pass


@dataclass(frozen=True)
class Role:
    """What this process does in a run spread over several."""

    process: int = 0
    loops: Mapping[str, int] | None = None
    """Loops per variant calibrated by process 0 (None: calibrate here)."""
    order_seed: int = 0

    @property
    def counts(self) -> bool:
        return self.process == 0


def _order_seed(seed: int, case_index: int, process: int) -> int:
    return seed * 1_000_003 + case_index * 1009 + process


def finish_result(scenario: Scenario, opts: RunOptions, run_id: str, started: float,
                  cases: Sequence[CaseResult], env: Mapping[str, Any] | None, timings: Mapping[str, float],
                  complete: bool, reason: str | None = None, *, processes: int = 1, summarize: bool = True,
                  params: Mapping[str, Any] | None = None, metrics: Mapping[str, dict] | None = None) -> Result:
    """The result of a run from its cases: derived metrics recomputed from the (merged) ratios,
    declarations of every metric, and the lesson written from this run's numbers."""
    params = dict(params) if params is not None else scenario.params_for(opts.profile, opts.params)
    derive = {c.name: c.derive for c in scenario.cases(params) if c.derive is not None}
    out = []
    for case in cases:
        if case.name in derive:
            extra = derive[case.name](case)
            case = replace(case, variants={name: replace(v, metrics={**v.metrics, **extra.get(name, {})})
                                           for name, v in case.variants.items()})
        out.append(case)
    result = Result(
        scenario=scenario.name, run_id=run_id, profile=opts.profile, complete=complete,
        started_at=dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(), finished_at=_now(),
        title=scenario.title, reason=reason, env=dict(env or {}), params=params, cases=tuple(out),
        timings=dict(timings), processes=processes, gc=opts.gc,
        metrics={**declarations(scenario, out), **(metrics or {})},
    )
    if complete and summarize and scenario.summarize is not None:
        result = replace(result, lesson=lesson(result, scenario.summarize(result)))
    return result


def lesson(result: Result, lines: Sequence[str]) -> tuple[str, ...]:
    """The lesson's sentences — preceded, when a check failed, by which ones: the numbers below are
    what this run measured, not the result the lesson expects."""
    failed = [f"{c.variant}: {c.name}" for c in result.checks if not c.ok and not c.skipped]
    if not failed:
        return tuple(lines)
    head = (f"{len(failed)} check(s) FAILED in this run ({'; '.join(failed[:4])}"
            + (f"; and {len(failed) - 4} more" if len(failed) > 4 else "")
            + "): the sentences below report what was measured, not what the lesson expects.")
    return (head, *lines)


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
    shared: Any = None, role: Role = Role(),
) -> CaseResult:
    t_case = time.perf_counter()
    progress(ProgressEvent(scenario, "verify", case.name, index, total, process=role.process))
    runnable: list[Variant] = []
    skipped: dict[str, str] = {}
    for v in case.variants:
        missing = sorted(v.requires - components)
        if missing:
            skipped[v.name] = "needs " + ", ".join(missing) + ": " + "; ".join(
                INSTALL_HINTS.get(m, f"provide {m}") for m in missing)
        else:
            runnable.append(v)

    # 1. counters pass (untimed, instrumented) — process 0 only: counters do not vary
    runs: dict[str, VariantRun] = {}
    explains: dict[str, tuple[dict, ...]] = {}
    if role.counts:
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
        progress(ProgressEvent(scenario, "measure", case.name, index, total, 0.0, process=role.process))
        if isinstance(timing, SelfTimed):
            loops = {name: 1 for name in timed}
        elif isinstance(timing, FixedLoops):
            loops = {name: timing.loops for name in timed}
        else:
            for unit in timed.values():
                warm_up(unit, budget.warmup_s, clock)
            given = role.loops or {}
            loops = ({name: int(given[name]) for name in timed} if all(name in given for name in timed)
                     else calibrate_all(timed, budget, clock))
        # An op-stream case ends on whole laps of the stream, so every chunk of ops counts equally.
        lap = max(1, case.units // timing.loops) if isinstance(timing, FixedLoops) else 1
        case_budget = budget
        if timing.rounds is not None:  # a case's fixed rounds are the run's: split over its processes
            share = max(2, -(-timing.rounds // max(1, opts_processes(opts))))
            case_budget = replace(budget, min_rounds=share, max_rounds=share)
        on_round = lambda frac: progress(ProgressEvent(scenario, "measure", case.name, index, total, frac,  # noqa: E731
                                                       process=role.process))
        hooks = {name: (ctx.before_sample, ctx.after_sample) for name, ctx in contexts.items() if ctx._samples}
        if isinstance(timing, SelfTimed):
            samples = measure_self_timed(timed, case_budget, clock, on_round, hooks=hooks, order_seed=role.order_seed)
        else:
            samples = measure_rounds(timed, loops, case_budget, clock, on_round=on_round, round_multiple=lap,
                                     hooks=hooks, order_seed=role.order_seed, gc=opts.gc)
    finally:
        for ctx in contexts.values():
            ctx.close()

    # 5. checks — after timing, so self-timed cases can check what the measured samples saw
    if isinstance(timing, SelfTimed):
        runs = {name: replace(run, metrics={**run.metrics, **contexts[name].metrics}) for name, run in runs.items()}
    outcomes = tuple(check.evaluate(runs) for check in case.checks) if role.counts else ()
    outcomes = tuple(_keep_outputs(o, c, runs, artifacts, case.name) for o, c in zip(outcomes, case.checks))

    variants: dict[str, VariantResult] = {}
    for v in case.variants:
        if v.name in skipped:
            variants[v.name] = VariantResult(v.name, skipped=skipped[v.name], description=v.description,
                                             series=v.series, x=v.x)
            continue
        s = samples[v.name]
        run = runs.get(v.name)
        metrics = dict(run.metrics) if run else {}
        if isinstance(timing, SelfTimed):
            metrics.update(contexts[v.name].metrics)  # what the measured samples saw
        variants[v.name] = VariantResult(
            name=v.name, samples_s=tuple(s), loops=loops[v.name], median_s=stats.median(s), iqr_s=stats.iqr(s),
            counters={k: run.per_unit(k) for k in sorted(run.counters)} if run else {},
            metrics=metrics, explain=explains.get(v.name, ()), description=v.description, series=v.series, x=v.x,
            statements=_statements(run) if run else {},
        )
    base = samples.get(case.baseline)
    result = CaseResult(case.name, dict(case.params), case.baseline, variants, outcomes, len(base) if base else 0,
                        time.perf_counter() - t_case, case.title, tuple(case.columns), case.time_label,
                        timing={"mode": timing.mode, "statistic": timing.statistic},
                        charts=tuple(c.to_dict() for c in case.charts),
                        order={"design": "williams", "seed": role.order_seed})
    return with_ratios(result)


def _keep_outputs(outcome, check, runs: Mapping[str, VariantRun], artifacts: Path | None, case: str):
    """A failed check that compares two variants' answers keeps both answers beside the result
    (results/<run-id>/outputs/<case>/<variant>.json), so the user can diff them whole."""
    if outcome.ok or outcome.skipped or not check.needs or artifacts is None:
        return outcome
    import json

    from harness.results.store import write_text_atomic

    folder = artifacts / "outputs" / _safe(case)
    written = []
    for name in (check.variant, *check.needs):
        if name in runs:
            path = folder / f"{_safe(name)}.json"
            write_text_atomic(path, json.dumps(list(runs[name].results), indent=1, default=repr, sort_keys=True))
            written.append(path)
    if not written:
        return outcome
    return replace(outcome, detail=f"{outcome.detail} (both outputs: {folder})")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _statements(run: VariantRun, keep: int = 25) -> dict[str, float]:
    """The statements a variant ran, per unit, most frequent first (at most `keep` shapes)."""
    top = sorted(run.statements.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]
    return {sql: round(n / run.units, 6) for sql, n in top}


def opts_processes(opts: RunOptions) -> int:
    return opts.processes if opts.processes else 1


def counting_pass(v: Variant, case: Case, opts: RunOptions, components: frozenset[str],
                  artifacts: Path | None = None, keep_sql: bool = False,
                  shared: Any = None) -> tuple[VariantRun, list]:
    """One variant's untimed, instrumented pass: counters (queries, rows, GC collections, what
    PostgreSQL did), results, metrics and (optionally) SQL."""
    ctx = Context(case.params, opts.seed, opts.profile, components, counting=True, artifacts=artifacts,
                  shared=shared)
    try:
        unit = v.make(ctx)
        with counting.count_gc(ctx.counters), counting.count_postgres(ctx.counters), \
                counting.count_queries(ctx.counters, keep_sql=keep_sql) as qc:
            results = [unit() for _ in range(case.units)]
    finally:
        ctx.close()
    run = VariantRun(v.name, case.units, dict(ctx.counters), results, dict(ctx.metrics),
                     [s for s, _ in qc.statements], dict(qc.shapes))
    return run, list(qc.statements)


def distinct_sql(statements: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    seen, out = set(), []
    for sql, params in statements:
        key = counting.normalize_sql(sql)
        if key not in seen:
            seen.add(key)
            out.append((sql, params))
    return out
