"""See why: the plans of a variant's SQL (`labs explain`) and where its time goes (`labs profile`).

Both run the real variant on the real stack, outside any measured run: EXPLAIN ANALYZE executes
the statements again, and the profiler slows the code it watches.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import unknown
from harness.measure import counters
from harness.measure.contract import Case, Context, Scenario, Variant
from harness.measure.runner import RunOptions, counting_pass, distinct_sql


def pick(scenario: Scenario, opts: RunOptions, variant: str | None, case: str | None) -> Iterator[tuple[Case, Variant]]:
    """(case, variant) pairs to look at; names validated with suggestions."""
    params = scenario.params_for(opts.profile, opts.params)
    cases = list(scenario.cases(params))
    if case is not None:
        names = [c.name for c in cases]
        if case not in names:
            raise unknown(f"case of {scenario.name}", case, names)
        cases = [c for c in cases if c.name == case]
    if variant is not None:
        known = scenario.variant_names(opts.profile)
        if variant not in known:
            raise unknown(f"variant of {scenario.name}", variant, known)
    for c in cases:
        for v in c.variants:
            if variant is None or v.name == variant:
                yield c, v


def validate(scenario: Scenario, profile: str, params, variant: str | None, case: str | None) -> None:
    """Bad names and parameters fail here, before any server starts."""
    from harness.errors import UsageError
    from harness.measure.runner import RunOptions

    scenario.params_for(profile, params)
    opts = RunOptions((scenario.name,), profile, (), params=dict(params))
    if not list(pick(scenario, opts, variant, case)):
        raise UsageError(f"variant {variant!r} is not in case {case!r} of {scenario.name}")


@dataclass(frozen=True)
class Explained:
    case: str
    variant: str
    sql: str
    plan: dict
    """The JSON plan's root ("Plan"): with ANALYZE timings and BUFFERS when `analyzed`."""
    calls: int
    how: str = ""
    """How the plan was obtained: run read-only and rolled back, run and rolled back, or planned only."""

    @property
    def analyzed(self) -> bool:
        return self.how.startswith("ran")


READ_ONLY = "ran in a READ ONLY transaction, rolled back"
ROLLED_BACK = ("ran in a transaction that was rolled back (its writes are undone; sequences it advanced "
               "stay advanced)")
PLANNED = "planned only, not run: it writes (--analyze-writes runs it in a transaction that is rolled back)"


def plan_of(sql: str, params, analyze_writes: bool = False) -> tuple[dict, str]:
    """A statement's plan and how it was obtained. Never changes data: a statement whose plan
    writes (ModifyTable, in a CTE too) is only planned unless `analyze_writes`, and then run in a
    transaction that is rolled back; every other one runs READ ONLY (a write hidden in a function
    call fails there, and the statement is only planned)."""
    plain = counters.plan_json(sql, params)
    if counters.modifies(plain) and not analyze_writes:
        return plain, PLANNED
    writes = counters.modifies(plain)
    try:
        return counters.plan_json(sql, params, analyze=True, writes=writes), ROLLED_BACK if writes else READ_ONLY
    except counters.WritesData:
        return plain, PLANNED


def explain(prep, variant: str | None = None, case: str | None = None, analyze_writes: bool = False) -> list[Explained]:
    """Run each picked variant's counters pass and EXPLAIN (ANALYZE, BUFFERS) the statements it
    sent — reads read-only, writes planned only (or, asked, run and rolled back): see plan_of.
    `prep`: a seeded scenario (harness.session.Prepared)."""
    out = []
    for c, v in pick(prep.scenario, prep.opts, variant, case):
        _run, statements = counting_pass(v, c, prep.opts, prep.components, prep.artifacts, keep_sql=True,
                                         shared=prep.shared)
        calls = Counter(counters.normalize_sql(sql) for sql, _ in statements)
        for sql, params in distinct_sql(statements):
            if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE", "INSERT", "MERGE", "VALUES",
                                                    "TABLE")):
                continue
            plan, how = plan_of(sql, params, analyze_writes)
            normalized = counters.normalize_sql(sql)
            out.append(Explained(c.name, v.name, normalized, plan, calls[normalized], how))
    return out


def profile(prep, out_dir: Path, variant: str, case: str | None = None, seconds: float = 2.0) -> dict[str, Any]:
    """Run the variant's timed unit under pyinstrument for ~`seconds`; write HTML, speedscope JSON and
    the SQL it ran with timings. Returns the paths and a summary. `prep`: harness.session.Prepared."""
    from pyinstrument import Profiler
    from pyinstrument.renderers import SpeedscopeRenderer

    scenario, opts = prep.scenario, prep.opts
    (c, v), *_ = list(pick(scenario, opts, variant, case)) or [(None, None)]
    if c is None:
        raise unknown(f"variant of {scenario.name}", variant, scenario.variant_names(opts.profile))
    ctx = Context(c.params, opts.seed, opts.profile, prep.components, counting=False, artifacts=out_dir,
                  shared=prep.shared)
    unit = v.make(ctx)
    unit()  # warm
    sql_times: dict[str, list[float]] = {}

    def timed_sql(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_times.setdefault(counters.normalize_sql(sql), []).append(time.perf_counter() - t0)

    from django.db import connection

    profiler = Profiler(interval=0.0005)
    calls = 0
    end = time.perf_counter() + seconds
    with connection.execute_wrapper(timed_sql):
        profiler.start()
        while time.perf_counter() < end or calls == 0:
            unit()
            calls += 1
        profiler.stop()
    ctx.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"profile-{scenario.name}-{c.name}-{v.name}".replace("/", "_").replace("=", "-")
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(profiler.output_html())
    speedscope = out_dir / f"{stem}.speedscope.json"
    speedscope.write_text(profiler.output(renderer=SpeedscopeRenderer()))
    rows = sorted(((sum(ts), len(ts), sql) for sql, ts in sql_times.items()), reverse=True)
    sql_path = out_dir / f"{stem}.sql.txt"
    sql_path.write_text("".join(f"{total * 1000:10.2f} ms total  {n:6d} calls  {total / n * 1000:8.3f} ms avg  {sql}\n"
                                for total, n, sql in rows))
    return {"html": html_path, "speedscope": speedscope, "sql": sql_path, "units": calls,
            "text": profiler.output_text(unicode=True, color=False, show_all=False),
            "top_sql": rows[:5], "case": c.name, "variant": v.name}
