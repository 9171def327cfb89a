"""Concurrent writes: lost updates, locks, optimistic versions, isolation levels, deadlocks, queues.

Unit of work = one round: `threads` threads each increment a shared counter `increments` times
(with a little application work between read and write, as real code has). Lost updates =
expected − final value: counted, not guessed. Then a job queue claimed with and without
select_for_update(skip_locked=True), and a deliberate deadlock that PostgreSQL detects and the
code retries.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from harness.present.fmt import speed_words
from harness.scenario import (
    Calibrated,
    Case,
    Context,
    Metric,
    Scenario,
    Variant,
    metric_check,
)

APP_WORK_S = 0.001
"""Time between reading and writing (validation, a template, an API call…): the race window."""


def _counter(name: str):
    from labs.bookstore.models import Counter

    counter, _ = Counter.objects.get_or_create(name=name)
    Counter.objects.filter(pk=counter.pk).update(value=0, version=0)
    return counter.pk


def _is_retryable(exc: BaseException) -> str | None:
    import psycopg

    cause = exc.__cause__ or exc
    if isinstance(cause, psycopg.errors.SerializationFailure):
        return "serialization"
    if isinstance(cause, psycopg.errors.DeadlockDetected):
        return "deadlock"
    return None


def _with_retry(tally: dict, lock: threading.Lock, fn) -> None:
    from django.db import DatabaseError

    for _attempt in range(50):
        try:
            fn()
            return
        except DatabaseError as exc:
            kind = _is_retryable(exc)
            if kind is None:
                raise
            with lock:
                tally[kind] = tally.get(kind, 0) + 1
    raise RuntimeError("gave up after 50 retries")


def increment_naive(pk: int, tally, lock) -> None:
    from labs.bookstore.models import Counter

    c = Counter.objects.get(pk=pk)
    time.sleep(APP_WORK_S)
    c.value += 1
    c.save(update_fields=["value"])  # writes what it read + 1: a concurrent increment is lost


def increment_f(pk: int, tally, lock) -> None:
    from django.db.models import F

    from labs.bookstore.models import Counter

    time.sleep(APP_WORK_S)
    Counter.objects.filter(pk=pk).update(value=F("value") + 1)  # the database adds: nothing to lose


def increment_select_for_update(pk: int, tally, lock) -> None:
    from django.db import transaction

    from labs.bookstore.models import Counter

    with transaction.atomic():
        c = Counter.objects.select_for_update().get(pk=pk)  # others wait here until we commit
        time.sleep(APP_WORK_S)
        c.value += 1
        c.save(update_fields=["value"])


def increment_optimistic(pk: int, tally, lock) -> None:
    from django.db.models import F

    from labs.bookstore.models import Counter

    while True:
        c = Counter.objects.get(pk=pk)
        time.sleep(APP_WORK_S)
        won = Counter.objects.filter(pk=pk, version=c.version).update(value=c.value + 1, version=F("version") + 1)
        if won:
            return
        with lock:
            tally["version_conflicts"] = tally.get("version_conflicts", 0) + 1


def _isolated(level: str):
    def increment(pk: int, tally, lock) -> None:
        from django.db import connection, transaction

        from labs.bookstore.models import Counter

        def attempt():
            with transaction.atomic():
                with connection.cursor() as cur:
                    cur.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
                c = Counter.objects.get(pk=pk)
                time.sleep(APP_WORK_S)
                c.value += 1
                c.save(update_fields=["value"])
        if level == "READ COMMITTED":
            attempt()  # no retry: read-modify-write still loses updates here
        else:
            _with_retry(tally, lock, attempt)  # the database refuses the conflicting commit: retry it
    return increment


METHODS = {
    "read_modify_write": increment_naive,
    "f_expression": increment_f,
    "select_for_update": increment_select_for_update,
    "optimistic_version": increment_optimistic,
    "read_committed_tx": _isolated("READ COMMITTED"),
    "repeatable_read_retry": _isolated("REPEATABLE READ"),
    "serializable_retry": _isolated("SERIALIZABLE"),
}


def _run_threads(n: int, target) -> None:
    from django.db import connections

    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # surfaced below: a crashing variant must not pass silently
            errors.append(exc)
        finally:
            connections.close_all()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} worker(s) failed") from errors[0]


def _counter_variant(name: str):
    fn = METHODS[name]

    def make(ctx: Context):
        threads, increments = ctx.params["threads"], ctx.params["increments"]
        pk = _counter(f"locking-{name}")
        tally: dict[str, int] = {}
        lock = threading.Lock()
        rounds = [0]
        lost = [0]

        def unit():
            from labs.bookstore.models import Counter

            Counter.objects.filter(pk=pk).update(value=0, version=0)
            _run_threads(threads, lambda i: [fn(pk, tally, lock) for _ in range(increments)])
            final = Counter.objects.get(pk=pk).value
            rounds[0] += 1
            lost[0] += threads * increments - final
            return None

        def close():
            if ctx.counting and rounds[0]:
                ctx.metrics.update(lost_updates=lost[0] // rounds[0], retries=sum(
                    v for k, v in tally.items() if k in {"serialization", "deadlock"}) // rounds[0],
                    version_conflicts=tally.get("version_conflicts", 0) // rounds[0])
        ctx.on_close(close)
        return unit
    return make


# -- a job queue --------------------------------------------------------------------------------
def _queue_variant(skip_locked: bool):
    def make(ctx: Context):
        from labs.bookstore.models import Job

        jobs, workers = ctx.params["jobs"], ctx.params["threads"]
        batch = 1 if skip_locked else 2
        stats = {"duplicates": 0, "rounds": 0}

        def claim_loop(i: int) -> None:
            from django.db import transaction
            from django.db.models import F

            while True:
                with transaction.atomic():
                    qs = Job.objects.filter(batch=batch, done_by__isnull=True).order_by("id")
                    job = (qs.select_for_update(skip_locked=True) if skip_locked else qs).first()
                    if job is None:
                        return
                    time.sleep(APP_WORK_S)  # the job's work
                    Job.objects.filter(pk=job.pk).update(done_by=f"worker-{i}", done_count=F("done_count") + 1)

        def unit():
            from django.db.models import Sum

            Job.objects.filter(batch=batch).delete()
            Job.objects.bulk_create(Job(batch=batch) for _ in range(jobs))
            _run_threads(workers, claim_loop)
            done = Job.objects.filter(batch=batch).aggregate(s=Sum("done_count"))["s"] or 0
            stats["rounds"] += 1
            # every claim adds 1 (F(), so none is lost): above `jobs`, some job ran twice
            stats["duplicates"] += max(0, done - jobs)

        def close():
            if ctx.counting and stats["rounds"]:
                ctx.metrics["duplicate_claims"] = stats["duplicates"] // stats["rounds"]
        ctx.on_close(close)
        return unit
    return make


# -- a deadlock, detected and retried ---------------------------------------------------------
def _deadlock_variant(ordered: bool):
    def make(ctx: Context):
        a, b = _counter("locking-deadlock-a"), _counter("locking-deadlock-b")
        tally: dict[str, int] = {}
        lock = threading.Lock()
        barrier = threading.Barrier(2)
        rounds = [0]

        def transfer(first: int, second: int) -> None:
            from django.db import connection, transaction
            from django.db.models import F

            from labs.bookstore.models import Counter

            def attempt():
                with transaction.atomic():
                    with connection.cursor() as cur:
                        cur.execute("SET LOCAL deadlock_timeout = '50ms'")  # detect fast (superuser setting)
                    Counter.objects.filter(pk=first).update(value=F("value") + 1)
                    try:
                        barrier.wait(timeout=0.2)  # both hold their first lock now
                    except threading.BrokenBarrierError:
                        pass
                    Counter.objects.filter(pk=second).update(value=F("value") + 1)
            _with_retry(tally, lock, attempt)

        def unit():
            barrier.reset()
            if ordered:  # the fix: everyone locks in the same order
                _run_threads(2, lambda i: transfer(min(a, b), max(a, b)))
            else:
                _run_threads(2, lambda i: transfer(a, b) if i == 0 else transfer(b, a))
            rounds[0] += 1

        def close():
            from labs.bookstore.models import Counter

            if ctx.counting and rounds[0]:
                total = sum(Counter.objects.filter(pk__in=[a, b]).values_list("value", flat=True))
                ctx.metrics.update(deadlocks=tally.get("deadlock", 0), lost_updates=4 * rounds[0] - total)
        ctx.on_close(close)
        return unit
    return make


def cases(params) -> list[Case]:
    correct = [n for n in METHODS if n not in {"read_modify_write", "read_committed_tx"}]
    checks = [metric_check(n, "lost_updates", lambda v: v == 0, "== 0") for n in correct]
    checks += [metric_check("read_modify_write", "lost_updates", lambda v: v is not None and v > 0,
                            f"> 0 with {params['threads']} concurrent writers")]
    out = [Case("counter", {k: params[k] for k in ("threads", "increments")}, "read_modify_write",
                tuple(Variant(n, _counter_variant(n)) for n in METHODS), tuple(checks), units=1,
                title=f"counter · {params['threads']} threads × {params['increments']} increments "
                      f"({APP_WORK_S * 1000:g} ms of work between read and write)",
                columns=("lost_updates", "retries", "version_conflicts"), timing=Calibrated(rounds=params["rounds"]))]
    out.append(Case("job_queue", {"jobs": params["jobs"], "threads": params["threads"]}, "no_lock",
                    (Variant("no_lock", _queue_variant(False), "claim the first undone job"),
                     Variant("skip_locked", _queue_variant(True), "select_for_update(skip_locked=True)")),
                    (metric_check("skip_locked", "duplicate_claims", lambda v: v == 0, "== 0"),),
                    units=1, title=f"job queue · {params['jobs']} jobs, {params['threads']} workers",
                    columns=("duplicate_claims",), timing=Calibrated(rounds=params["rounds"])))
    out.append(Case("deadlock", {}, "opposite_order",
                    (Variant("opposite_order", _deadlock_variant(False), "A→B and B→A: PostgreSQL kills one"),
                     Variant("same_order", _deadlock_variant(True), "both lock A then B")),
                    (metric_check("opposite_order", "deadlocks", lambda v: v is not None and v >= 1,
                                  ">= 1 (detected, then retried)"),
                     metric_check("opposite_order", "lost_updates", lambda v: v == 0, "== 0 after retries"),
                     metric_check("same_order", "deadlocks", lambda v: v == 0, "== 0")),
                    units=1, title="deadlock · two transfers locking two rows", columns=("deadlocks", "lost_updates"),
                    timing=Calibrated(rounds=params["rounds"])))
    return out


def summarize(result) -> list[str]:
    """Every number from this run: what each strategy lost, retried, claimed twice, deadlocked."""
    lines = []
    for case in result.cases:
        v = {n: x for n, x in case.variants.items() if not x.skipped}
        if case.name == "counter":
            total = case.params["threads"] * case.params["increments"]
            parts = [f"{n} lost {x.metrics.get('lost_updates')}" for n, x in v.items()
                     if x.metrics.get("lost_updates") is not None]
            line = f"counter ({total} increments per round): " + ", ".join(parts) + "."
            f_expr = v.get("f_expression")
            if f_expr and f_expr.ratio:
                line += f" F() was {speed_words(f_expr.ratio)} than read-modify-write."
            retries = {n: x.metrics.get("retries") for n, x in v.items() if x.metrics.get("retries")}
            if retries:
                line += " Retries per round: " + ", ".join(f"{n} {r}" for n, r in retries.items()) + "."
            lines.append(line)
        elif case.name == "job_queue":
            parts = [f"{n} {x.metrics.get('duplicate_claims')}" for n, x in v.items()
                     if x.metrics.get("duplicate_claims") is not None]
            lines.append("job queue, jobs processed twice per round: " + ", ".join(parts) + ".")
        elif case.name == "deadlock":
            parts = [f"{n} {x.metrics.get('deadlocks')} deadlocks detected (lost {x.metrics.get('lost_updates')})"
                     for n, x in v.items() if x.metrics.get("deadlocks") is not None]
            lines.append("transfers: " + "; ".join(parts) + ".")
    return lines


SCENARIO = Scenario(
    name="locking",
    title="Concurrent writes: lost updates, locks, isolation, deadlocks, job queues",
    requires=frozenset({"postgres"}),
    profiles={"quick": {"threads": 4, "increments": 15, "jobs": 40, "rounds": 3},
              "full": {"threads": 8, "increments": 50, "jobs": 200, "rounds": 8}},
    cases=cases,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(Metric("lost_updates", "lost", kind="exact", description="increments lost per round"),
             Metric("retries", "retries", description="transactions retried per round (serialization, deadlock)"),
             Metric("version_conflicts", "conflicts", description="optimistic version conflicts per round"),
             Metric("duplicate_claims", "dup claims", kind="exact", description="jobs processed twice per round"),
             Metric("deadlocks", "deadlocks", description="deadlocks PostgreSQL detected")),
)
