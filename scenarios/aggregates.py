"""A dashboard's numbers three ways: a live GROUP BY, a materialized view, and counters kept on
every write (by the application, as `F('n') + 1` compiles, or by a trigger) — read speed, write
overhead, the materialized view's staleness and its REFRESH cost (plain vs CONCURRENTLY), every
answer checked against the live one.

The dashboard: per publisher, its books, their reviews and the ratings' sum (integers: exact
comparisons). The scenario works on its own copy of the reviews (`agg_review`, with the book's
publisher), so its trigger and extra writes never touch the bookstore the other scenarios read.
"""
from __future__ import annotations

import time
from pathlib import Path

from harness.scenario import (
    Calibrated,
    Case,
    Check,
    Context,
    Metric,
    Scenario,
    SelfTimed,
    Variant,
    metric_check,
    queries_exactly,
    same_result_as,
)
from scenarios import common

LIVE = """
SELECT publisher_id, count(DISTINCT book_id) AS books, count(*) AS reviews, sum(rating) AS rating_sum
FROM agg_review GROUP BY publisher_id ORDER BY publisher_id"""
MV = "agg_publisher_mv"
COUNTERS = {"counter_app": "agg_counter_app", "counter_trigger": "agg_counter_trigger"}
"""Counter tables: kept by the application's UPDATE, or by a trigger on agg_review."""

SCHEMA = f"""
DROP TABLE IF EXISTS agg_review;
DROP TABLE IF EXISTS agg_counter_app, agg_counter_trigger;
CREATE TABLE agg_review AS
    SELECT r.id, r.book_id, b.publisher_id, r.rating FROM bookstore_review r JOIN bookstore_book b ON b.id = r.book_id;
ALTER TABLE agg_review ADD PRIMARY KEY (id);
CREATE SEQUENCE agg_review_id_seq OWNED BY agg_review.id;
SELECT setval('agg_review_id_seq', (SELECT coalesce(max(id), 0) + 1 FROM agg_review));
ALTER TABLE agg_review ALTER COLUMN id SET DEFAULT nextval('agg_review_id_seq');
CREATE INDEX agg_review_publisher ON agg_review (publisher_id);
CREATE MATERIALIZED VIEW {MV} AS {LIVE};
CREATE UNIQUE INDEX agg_publisher_mv_pk ON {MV} (publisher_id);  -- REFRESH ... CONCURRENTLY needs it
CREATE TABLE agg_counter_app (publisher_id int PRIMARY KEY, books bigint, reviews bigint, rating_sum bigint);
CREATE TABLE agg_counter_trigger (publisher_id int PRIMARY KEY, books bigint, reviews bigint, rating_sum bigint);
INSERT INTO agg_counter_app {LIVE};
INSERT INTO agg_counter_trigger {LIVE};
CREATE FUNCTION agg_count_review() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agg_counter_trigger SET reviews = reviews + 1, rating_sum = rating_sum + NEW.rating,
        books = books + (NOT EXISTS (SELECT 1 FROM agg_review WHERE book_id = NEW.book_id AND id <> NEW.id))::int
    WHERE publisher_id = NEW.publisher_id;
    RETURN NEW;
END $$;
CREATE TRIGGER agg_review_counted AFTER INSERT ON agg_review FOR EACH ROW EXECUTE FUNCTION agg_count_review();
"""


def _rows(query: str) -> list[tuple]:
    """Integer rows (sums come back as Decimal)."""
    return [tuple(int(x) for x in row) for row in common.sql(query)]


def _table(name: str) -> list[tuple]:
    return _rows(f"SELECT publisher_id, books, reviews, rating_sum FROM {name} ORDER BY publisher_id")


def live() -> list[tuple]:
    return _rows(LIVE)


READERS = {
    "live_group_by": (live, "GROUP BY over the reviews, at every read"),
    "materialized_view": (lambda: _table(MV), f"SELECT from {MV} (as fresh as its last REFRESH)"),
    "counter_app": (lambda: _table(COUNTERS["counter_app"]), "SELECT from a counter table the application updates"),
    "counter_trigger": (lambda: _table(COUNTERS["counter_trigger"]), "SELECT from a counter table a trigger updates"),
}


def _differs(a: list[tuple], b: list[tuple]) -> int:
    """Publishers whose numbers differ between two answers (or who are in one only)."""
    by_a, by_b = {r[0]: r for r in a}, {r[0]: r for r in b}
    return sum(1 for pid in by_a.keys() | by_b.keys() if by_a.get(pid) != by_b.get(pid))


# -- writes -------------------------------------------------------------------------------------------
def _writer(name: str):
    """Insert reviews one by one, each with the maintenance `name` implies; after the measured
    batches, compare each maintained answer with the live one."""
    def make(ctx: Context):
        from django.db import connection, transaction

        p = ctx.params
        written: dict[str, int] = ctx.shared  # reviews written, per variant (counting passes included)
        books = _rows("SELECT DISTINCT book_id, publisher_id FROM agg_review ORDER BY book_id LIMIT 50")
        state = {"i": 0}

        def insert_one() -> None:
            book, publisher = books[state["i"] % len(books)]
            rating = 1 + state["i"] % 5
            state["i"] += 1
            with transaction.atomic(), connection.cursor() as cur:
                # (the trigger on agg_review keeps agg_counter_trigger, whoever inserts)
                cur.execute("INSERT INTO agg_review (book_id, publisher_id, rating) VALUES (%s, %s, %s)",
                            [book, publisher, rating])
                if name == "counter_app":  # what Counter.objects.filter(...).update(n=F("n") + 1) sends
                    cur.execute("UPDATE agg_counter_app SET reviews = reviews + 1, rating_sum = rating_sum + %s "
                                "WHERE publisher_id = %s", [rating, publisher])
            written[name] = written.get(name, 0) + 1

        if ctx.counting:
            return lambda: (insert_one(), "one review")[1]

        def unit() -> float:
            t0 = time.perf_counter()
            for _ in range(p["writes"]):
                insert_one()
            return (time.perf_counter() - t0) / p["writes"]

        @ctx.on_close
        def close() -> None:
            now = live()
            kept = _table(MV) if name == "insert_only" else _table(COUNTERS[name])
            ctx.metrics["differs_from_live"] = _differs(kept, now)
            ctx.metrics["writes"] = state["i"]
            if name == "counter_app":  # reviews the live answer has and this counter never saw
                ctx.metrics["missed_writes"] = sum(r[2] for r in now) - sum(r[2] for r in kept)
                ctx.metrics["others_wrote"] = sum(n for k, n in written.items() if k != "counter_app")
        return unit
    return make


WRITERS = {
    "insert_only": "INSERT the review; the materialized view is not touched (it goes stale)",
    "counter_app": "INSERT + UPDATE agg_counter_app SET reviews = reviews + 1 … (F() in the ORM), one transaction",
    "counter_trigger": "INSERT; an AFTER INSERT trigger updates agg_counter_trigger in the same statement",
}


# -- refresh ------------------------------------------------------------------------------------------
def _refresher(concurrently: bool):
    def make(ctx: Context):
        from django.db import connection

        if ctx.counting:
            stale = _differs(_table(MV), live())
            ctx.metrics["stale_before"] = stale

        def unit():
            with connection.cursor() as cur:
                cur.execute(f"REFRESH MATERIALIZED VIEW {'CONCURRENTLY ' if concurrently else ''}{MV}")
            return "refreshed"

        if ctx.counting:
            def check_unit():
                unit()
                ctx.metrics["stale_after"] = _differs(_table(MV), live())
                return "refreshed"
            return check_unit
        return unit
    return make


def _missed_only_others() -> Check:
    """The application's counter missed exactly the reviews other code paths wrote (> 0)."""
    def fn(runs):
        m = runs["counter_app"].metrics
        missed, others = m.get("missed_writes"), m.get("others_wrote")
        return missed is not None and missed == others > 0, (
            f"the counter missed {missed} review(s); other write paths wrote {others}")
    return Check("counter_app missed exactly the other paths' writes", "counter_app", fn)


def cases(params) -> list[Case]:
    readers = tuple(Variant(n, (lambda fn: lambda ctx: fn)(fn), description=d, explain=True)
                    for n, (fn, d) in READERS.items())
    writers = tuple(Variant(n, _writer(n), description=d) for n, d in WRITERS.items())
    refresh = (Variant("refresh", _refresher(False), description=f"REFRESH MATERIALIZED VIEW {MV}: locks out readers"),
               Variant("refresh_concurrently", _refresher(True),
                       description="REFRESH … CONCURRENTLY: readers go on; needs a unique index, diffs the result"))
    return [
        Case("read", {}, "live_group_by", readers,
             (*(queries_exactly(n, 1) for n in READERS), *(same_result_as(n, "live_group_by") for n in READERS
                                                           if n != "live_group_by")),
             title="the dashboard's numbers, per publisher", columns=("queries",)),
        Case("write", {"writes": params["writes"]}, "insert_only", writers,
             (queries_exactly("insert_only", 1), queries_exactly("counter_app", 2), queries_exactly("counter_trigger", 1),
              _missed_only_others(),
              metric_check("counter_trigger", "differs_from_live", lambda v: v == 0,
                           "== 0 (the trigger counted every insert, whoever wrote it)"),
              metric_check("insert_only", "differs_from_live", lambda v: v > 0,
                           "> 0 (the materialized view is stale until its next REFRESH)")),
             timing=SelfTimed(rounds=params["rounds"]), time_label="s/write",
             title=f"one review written, {params['writes']} per round, and what keeps the numbers",
             columns=("queries", "writes", "differs_from_live", "missed_writes")),
        Case("refresh", {}, "refresh", refresh,
             (metric_check("refresh", "stale_before", lambda v: v > 0, "> 0 (the writes made it stale)"),
              metric_check("refresh", "stale_after", lambda v: v == 0, "== 0"),
              metric_check("refresh_concurrently", "stale_after", lambda v: v == 0, "== 0")),
             timing=Calibrated(rounds=params["refresh_rounds"]),
             title=f"REFRESH of {MV} after the writes", columns=("stale_before", "stale_after")),
    ]


def setup(ctx: Context) -> dict[str, int]:
    common.seed_catalog_for(ctx)
    # by exact name, in dependency order, never CASCADE (it would also drop whatever else depends on them):
    # the view reads the table, the table's trigger calls the function
    for statement in (f"DROP MATERIALIZED VIEW IF EXISTS {MV}", "DROP TABLE IF EXISTS agg_review",
                      "DROP FUNCTION IF EXISTS agg_count_review()", SCHEMA, "ANALYZE agg_review"):
        common.sql(statement)
    return {}  # reviews written per variant


def summarize(result) -> list[str]:
    cases = {c.name: c for c in result.cases}
    out = []
    read = cases.get("read")
    if read and (lv := read.variants.get("live_group_by")) and lv.median_s:
        fast = [(n, v) for n, v in read.variants.items() if n != "live_group_by" and v.ratio]
        if fast:
            parts = ", ".join(f"{n} {1 / v.ratio:.0f}×" for n, v in fast)
            out.append(f"Reading the dashboard: the live GROUP BY took {lv.median_s * 1000:.2f} ms; faster than it: "
                       f"{parts}" + (" — each the same answer, read from rows already summed"
                                     if read.passed(*read.variants) else "") + ".")
    write = cases.get("write")
    if write and (base := write.variants.get("insert_only")) and base.median_s:
        parts = [f"{n} {v.median_s / base.median_s:.2f}×" for n, v in write.variants.items()
                 if n != "insert_only" and v.median_s]
        stale = base.metrics.get("differs_from_live")
        line = f"Writing a review: {base.median_s * 1e6:.0f} µs alone; with its counter kept: " + ", ".join(parts)
        if stale:
            line += (f". Meanwhile the materialized view disagreed with the live answer for {stale} publisher(s) "
                     "until its REFRESH")
        app, trig = write.variants.get("counter_app"), write.variants.get("counter_trigger")
        if app and trig and app.metrics.get("missed_writes") and write.passed("counter_app", "counter_trigger"):
            line += (f". The application's counter missed the {app.metrics['missed_writes']} reviews written by "
                     "code paths that do not update it; the trigger's counter matched the live answer: it sees "
                     "every insert")
        out.append(line + ".")
    ref = cases.get("refresh")
    if ref and (r := ref.variants.get("refresh")) and (c := ref.variants.get("refresh_concurrently")) and r.median_s \
            and c.median_s:
        out.append(f"REFRESH took {r.median_s * 1000:.1f} ms, CONCURRENTLY {c.median_s * 1000:.1f} ms "
                   f"({c.median_s / r.median_s:.1f}×) — the price of PostgreSQL computing it again and applying "
                   "only the difference, which is what lets readers go on during it.")
    return out


SCENARIO = Scenario(
    name="aggregates",
    title="Materialized views vs live aggregates vs counters",
    requires=frozenset({"postgres"}),
    profiles={
        "quick": {"writes": 30, "rounds": 3, "refresh_rounds": 5, "catalog": common.CATALOG["quick"]},
        "full": {"writes": 200, "rounds": 5, "refresh_rounds": 10, "catalog": common.CATALOG["full"]},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(
        Metric("differs_from_live", "differs from live", kind="exact",
               description="publishers whose kept numbers differ from the live GROUP BY"),
        Metric("writes", "writes", better=None),
        Metric("missed_writes", "missed writes", better=None,
               description="reviews the live answer counts and the application-kept counter does not"),
        Metric("others_wrote", "others wrote", better=None, description="reviews written by the other write paths"),
        Metric("stale_before", "stale before", better=None, description="publishers out of date before the REFRESH"),
        Metric("stale_after", "stale after", kind="exact"),
    ),
)
