"""Bulk writes: save() in a loop vs bulk_create (batch sizes) vs COPY; updates with save() vs
bulk_update vs QuerySet.update(F()); inside and outside transaction.atomic(); and the pitfall
that bulk paths fire no model signals (counted by a real post_save receiver).
"""
from __future__ import annotations

import itertools
from pathlib import Path

from harness.scenario import Case, Check, Context, Metric, Scenario, Variant


class Ledger:
    """What the run shares (setup's value): fresh batch numbers, and a real post_save receiver
    counting the signals Event saves fire (connected for the run, disconnected at its end)."""

    def __init__(self) -> None:
        self.batches = itertools.count(1)
        self.post_save = 0

    def receiver(self, sender, **kwargs) -> None:
        self.post_save += 1

    def connect(self) -> None:
        from django.db.models.signals import post_save

        from labs.bookstore.models import Event

        post_save.connect(self.receiver, sender=Event, dispatch_uid="labs-bulk-writes", weak=False)

    def disconnect(self) -> None:
        from django.db.models.signals import post_save

        from labs.bookstore.models import Event

        post_save.disconnect(sender=Event, dispatch_uid="labs-bulk-writes")


def _rows(n: int, batch: int):
    from labs.bookstore.models import Event

    return [Event(batch=batch, name=f"event {i}", amount=i % 100) for i in range(n)]


def _count(batch: int) -> tuple[int, int]:
    from django.db.models import Count, Sum

    from labs.bookstore.models import Event

    agg = Event.objects.filter(batch=batch).aggregate(n=Count("id"), total=Sum("amount"))
    return agg["n"] or 0, agg["total"] or 0


# -- inserts ------------------------------------------------------------------------------------
def save_loop(n: int, batch: int) -> None:
    for e in _rows(n, batch):
        e.save()  # autocommit: every INSERT is its own transaction (a WAL flush each)


def save_loop_atomic(n: int, batch: int) -> None:
    from django.db import transaction

    with transaction.atomic():
        for e in _rows(n, batch):
            e.save()


def bulk_create(size: int):
    def insert(n: int, batch: int) -> None:
        from labs.bookstore.models import Event

        Event.objects.bulk_create(_rows(n, batch), batch_size=size)
    insert.__doc__ = f"bulk_create(batch_size={size})"
    return insert


def copy(n: int, batch: int) -> None:
    """COPY FROM STDIN through psycopg (no per-row SQL at all; not seen by execute_wrapper)."""
    from django.db import connection

    connection.ensure_connection()
    with connection.connection.cursor() as cur:
        with cur.copy("COPY bookstore_event (batch, name, amount) FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((batch, f"event {i}", i % 100))


INSERTS = {"save_loop": save_loop, "save_loop_atomic": save_loop_atomic, "bulk_create_50": bulk_create(50),
           "bulk_create_1000": bulk_create(1000), "copy": copy}


def _insert_variant(name: str, n: int):
    fn = INSERTS[name]

    def make(ctx: Context):
        ledger: Ledger = ctx.shared
        batches: list[int] = []

        def unit():
            batch = next(ledger.batches)
            before = ledger.post_save
            fn(n, batch)
            if ctx.counting:
                ctx.count("signals", ledger.post_save - before)
                batches.append(batch)

        @ctx.on_close
        def close():  # verification after the counted pass: its SELECTs are not the variant's queries
            if ctx.counting and batches:
                ctx.metrics["written"] = list(_count(batches[0]))
        return unit
    return make


# -- updates ------------------------------------------------------------------------------------
def _update_target(n: int) -> int:
    """A fixed batch of n rows that every update variant works on (created once per case)."""
    from labs.bookstore.models import Event

    batch = -n
    if not Event.objects.filter(batch=batch).exists():
        Event.objects.bulk_create(_rows(n, batch))
    return batch


def update_save_loop(batch: int) -> None:
    from labs.bookstore.models import Event

    for e in Event.objects.filter(batch=batch):
        e.amount += 1
        e.save(update_fields=["amount"])


def update_bulk(batch: int) -> None:
    from labs.bookstore.models import Event

    events = list(Event.objects.filter(batch=batch))
    for e in events:
        e.amount += 1
    Event.objects.bulk_update(events, ["amount"], batch_size=500)


def update_f(batch: int) -> None:
    from django.db.models import F

    from labs.bookstore.models import Event

    Event.objects.filter(batch=batch).update(amount=F("amount") + 1)


UPDATES = {"save_loop": update_save_loop, "bulk_update": update_bulk, "queryset_update_f": update_f}


def _update_variant(name: str, n: int):
    fn = UPDATES[name]

    def make(ctx: Context):
        ledger: Ledger = ctx.shared
        batch = _update_target(n)
        start_total = _count(batch)[1] if ctx.counting else 0
        calls = [0]

        def unit():
            before = ledger.post_save
            fn(batch)
            if ctx.counting:
                ctx.count("signals", ledger.post_save - before)
                calls[0] += 1

        @ctx.on_close
        def close():  # every row must have gained exactly +1 per call
            if ctx.counting and calls[0]:
                rows, total = _count(batch)
                ctx.metrics["written"] = [rows, (total - start_total) // calls[0]]
        return unit
    return make


def _exact(variant: str, counter: str, expected: float, why: str) -> Check:
    def fn(runs):
        got = runs[variant].per_unit(counter)
        return got == expected, f"{got:g} {counter} per unit ({why}: expected {expected:g})"
    return Check(f"{counter} == {expected:g}", variant, fn)


def _result_is(variant: str, expected: tuple) -> Check:
    """(rows, sum of amounts) the variant left in the table, counted after its pass."""
    def fn(runs):
        got = runs[variant].metrics.get("written")
        return got is not None and tuple(got) == expected, f"wrote {got} (expected {list(expected)})"
    return Check("rows written correctly", variant, fn)


def cases(params) -> list[Case]:
    n = params["rows"]
    total = sum(i % 100 for i in range(n))
    insert_checks = [_result_is(v, (n, total)) for v in INSERTS]
    insert_checks += [_exact("save_loop", "signals", n, "save() fires post_save"),
                      _exact("bulk_create_1000", "signals", 0, "bulk_create() fires no signals"),
                      _exact("bulk_create_50", "signals", 0, "bulk_create() fires no signals"),
                      _exact("copy", "signals", 0, "COPY bypasses the ORM: no signals"),
                      _exact("save_loop", "queries", n, "one INSERT per row"),
                      _exact("bulk_create_1000", "queries", -(-n // 1000), "one INSERT per batch"),
                      _exact("bulk_create_50", "queries", -(-n // 50), "one INSERT per batch")]
    update_checks = [_result_is(v, (n, n)) for v in UPDATES]
    update_checks += [_exact("queryset_update_f", "queries", 1, "a single UPDATE … SET amount = amount + 1"),
                      _exact("save_loop", "signals", n, "save() fires post_save"),
                      _exact("bulk_update", "signals", 0, "bulk_update() fires no signals"),
                      _exact("queryset_update_f", "signals", 0, "update() fires no signals")]
    return [
        Case("insert", {"rows": n}, "save_loop",
             tuple(Variant(v, _insert_variant(v, n), INSERTS[v].__doc__ or v) for v in INSERTS),
             tuple(insert_checks), units=1, title=f"insert {n} rows", columns=("queries", "signals", "rows_per_s")),
        Case("update", {"rows": n}, "save_loop",
             tuple(Variant(v, _update_variant(v, n)) for v in UPDATES), tuple(update_checks),
             title=f"update {n} rows (+1 each)", columns=("queries", "signals", "rows_per_s")),
    ]


def derive(rows: int):
    def fn(case):
        return {v.name: {"rows_per_s": round(rows / v.median_s)} for v in case.variants.values() if v.median_s}
    return fn


def _cases_with_rates(params) -> list[Case]:
    from dataclasses import replace

    return [replace(c, derive=derive(params["rows"])) for c in cases(params)]


def setup(ctx: Context) -> Ledger:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("TRUNCATE bookstore_event RESTART IDENTITY")
    ledger = Ledger()
    ledger.connect()
    ctx.on_close(ledger.disconnect)
    return ledger


def summarize(result) -> list[str]:
    lines = []
    for case in result.cases:
        v = case.variants
        base = v.get("save_loop")
        best = max((x for x in v.values() if x.metrics.get("rows_per_s")), key=lambda x: x.metrics["rows_per_s"],
                   default=None)
        if base and best and base.metrics.get("rows_per_s"):
            how = "one COPY stream (not seen by Django's execute_wrapper)" if best.name == "copy" else \
                f"{best.counters.get('queries', 0):g} statements"
            lines.append(f"{case.name}: {best.name} wrote {best.metrics['rows_per_s']:,} rows/s vs "
                         f"{base.metrics['rows_per_s']:,} for save() in a loop ({1 / best.ratio:.0f}× faster), "
                         f"in {how} instead of {base.counters.get('queries', 0):g}.")
        if case.name == "insert" and v.get("save_loop_atomic") and v["save_loop_atomic"].ratio:
            lines.append(f"Wrapping the same save() loop in transaction.atomic() alone was "
                         f"{1 / v['save_loop_atomic'].ratio:.1f}× faster: one commit instead of one per row.")
    fired = {}
    for case in result.cases:
        for v in case.variants.values():
            if "signals" in v.counters:
                fired[f"{case.name} {v.name}"] = v.counters["signals"]
    silent = [k for k, n in fired.items() if n == 0]
    loud = [f"{k} {n:g}" for k, n in fired.items() if n]
    if fired:
        lines.append(f"post_save signals per unit: {', '.join(loud) or 'none'}; none from "
                     f"{', '.join(silent) or 'no path'} — code relying on signals silently stops running there.")
    return lines


SCENARIO = Scenario(
    name="bulk_writes",
    title="Bulk writes: save() loops vs bulk_create vs COPY vs update(F())",
    requires=frozenset({"postgres"}),
    profiles={"quick": {"rows": 500}, "full": {"rows": 10_000}},
    cases=_cases_with_rates,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(Metric("signals", "signals", kind="exact", better=None,
                    description="post_save signals fired per unit (a real receiver counts them)"),
             Metric("rows_per_s", "rows/s", better="higher", description="rows written per second (median)"),
             Metric("written", "written", better=None, description="[rows, sum] left in the table, checked")),
)
