"""Declarative partitioning: sensor readings range-partitioned by month (tables from a migration,
labs/bookstore/migrations/0005), the same rows in one plain table, and events list-partitioned by
region. Partition pruning proven by the plan (partitions scanned, read from EXPLAIN), query time
with and without pruning, and removing a month: DETACH + DROP of its partition vs DELETE of its
rows — time, WAL written, and the space given back.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from harness.measure import counters
from harness.scenario import (
    Calibrated,
    Case,
    Context,
    Metric,
    Scenario,
    SelfTimed,
    Variant,
    metric_check,
    same_result_as,
)
from scenarios.common import sql, sql_value

PARTITIONS = 13
"""Twelve months of 2025 and the default partition."""
OLDEST = "part_reading_2025_01"
SENSORS = 50


def _columns(lo: str, hi: str, rows: int) -> str:
    """Rows lo..hi of the data set: id g, sensor, a time spread evenly over 2025, a value."""
    return (f"SELECT g, g % {SENSORS}, timestamptz '2025-01-01 00:00:00+00' + (g - 1) * (interval '365 days' / {rows}), "
            f"(g * 7919) % 1000 FROM generate_series({lo}, {hi}) AS g")


JANUARY = "taken_at < timestamptz '2025-02-01 00:00:00+00'"


def _january(rows: int) -> str:
    """January's rows of the data set (ids are spread evenly over the year: the first ~31/365 of
    them, with a margin, filtered by the time itself)."""
    last = min(rows, 31 * rows // 365 + 10)
    return f"SELECT * FROM ({_columns('1', str(last), rows)}) AS s (id, sensor, taken_at, value) WHERE {JANUARY}"


def _partitions_scanned(query: str, params) -> int:
    """Distinct relations the plan reads (EXPLAIN, not executed)."""
    plan = counters.plan_json(query, params)
    return len({n["Relation Name"] for n in counters.plan_nodes(plan) if "Relation Name" in n})


# -- pruning --------------------------------------------------------------------------------------------
MARCH = "taken_at >= timestamptz '2025-03-01 00:00:00+00' AND taken_at < timestamptz '2025-04-01 00:00:00+00'"
QUERIES = {
    "pruned": (f"SELECT count(*), sum(value) FROM part_reading WHERE sensor = %s AND {MARCH}",
               "partitioned, WHERE on the partition key: the planner skips the other months"),
    "not_pruned": ("SELECT count(*), sum(value) FROM part_reading WHERE sensor = %s AND "
                   "date_trunc('month', taken_at AT TIME ZONE 'UTC') = timestamp '2025-03-01'",
                   "partitioned, the key wrapped in a function: every partition is searched"),
    "plain_table": (f"SELECT count(*), sum(value) FROM flat_reading WHERE sensor = %s AND {MARCH}",
                    "one table with an index on (sensor, taken_at)"),
}
LIST_QUERIES = {
    "list_pruned": ("SELECT count(*), sum(amount) FROM part_event WHERE region = %s",
                    "list-partitioned by region, WHERE region = 'eu': one partition"),
    "list_not_pruned": ("SELECT count(*), sum(amount) FROM part_event WHERE lower(region) = %s",
                        "WHERE lower(region) = 'eu': every partition"),
}


def _query_variant(query: str, param):
    def make(ctx: Context):
        if ctx.counting:
            ctx.metrics["partitions_scanned"] = _partitions_scanned(query, [param])
        return lambda: tuple(int(x or 0) for x in sql(query, [param])[0])
    return make


# -- retention ------------------------------------------------------------------------------------------
def _restore(rows: int) -> None:
    """January back in both tables: its partition attached and filled, its rows in the plain one."""
    attached = sql_value("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE c.relname = %s", [OLDEST])
    if not attached:
        sql(f"DROP TABLE IF EXISTS {OLDEST}")
        sql(f"CREATE TABLE {OLDEST} (LIKE part_reading INCLUDING DEFAULTS)")
        sql(f"INSERT INTO {OLDEST} {_january(rows)}")
        sql(f"ALTER TABLE part_reading ATTACH PARTITION {OLDEST} FOR VALUES FROM ('2025-01-01') TO ('2025-02-01')")
    if not sql_value(f"SELECT count(*) FROM flat_reading WHERE {JANUARY}"):
        sql(f"INSERT INTO flat_reading {_january(rows)}")


def _heap(name: str) -> int:
    """Bytes of table data (main fork): the plain table's, or all partitions' together."""
    if name == "delete_rows":
        return int(sql_value("SELECT pg_relation_size('flat_reading')"))
    return int(sql_value("SELECT coalesce(sum(pg_relation_size(inhrelid)), 0) FROM pg_inherits "
                       "WHERE inhparent = 'part_reading'::regclass"))


def _retention_variant(name: str):
    def make(ctx: Context):
        rows = ctx.params["rows"]

        def unit() -> float:
            _restore(rows)  # untimed: the month is back before each removal
            table = "flat_reading" if name == "delete_rows" else OLDEST
            removed = sql_value(f"SELECT count(*) FROM {table} WHERE {JANUARY}")
            size0, wal0 = _heap(name), sql_value("SELECT pg_current_wal_insert_lsn()")
            t0 = time.perf_counter()
            if name == "delete_rows":
                sql(f"DELETE FROM flat_reading WHERE {JANUARY}")
            else:
                sql(f"ALTER TABLE part_reading DETACH PARTITION {OLDEST}")
                sql(f"DROP TABLE {OLDEST}")
            elapsed = time.perf_counter() - t0
            m = ctx.metrics
            m["rows_removed"] = int(removed)
            m.setdefault("_wal", []).append(int(sql_value("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)",
                                                          [wal0])))
            m["space_released_kib"] = round((size0 - _heap(name)) / 1024)
            return elapsed

        @ctx.on_close
        def close() -> None:
            wal = ctx.metrics.pop("_wal", [])
            if wal:
                ctx.metrics["wal_kib"] = round(statistics.median(wal) / 1024)
            _restore(rows)
        return unit
    return make


def cases(params) -> list[Case]:
    sensor = 7
    prune = tuple(Variant(n, _query_variant(q, sensor), description=d) for n, (q, d) in QUERIES.items())
    listed = tuple(Variant(n, _query_variant(q, "eu"), description=d) for n, (q, d) in LIST_QUERIES.items())
    retention = (Variant("delete_rows", _retention_variant("delete_rows"),
                         description="DELETE FROM flat_reading WHERE taken_at < '2025-02-01'"),
                 Variant("drop_partition", _retention_variant("drop_partition"),
                         description=f"ALTER TABLE part_reading DETACH PARTITION {OLDEST}; DROP TABLE {OLDEST}"))
    return [
        Case("range", {"rows": params["rows"], "sensor": sensor}, "plain_table", prune,
             (same_result_as("pruned", "plain_table"), same_result_as("not_pruned", "plain_table"),
              metric_check("pruned", "partitions_scanned", lambda v: v == 1, "== 1 (March only)"),
              metric_check("not_pruned", "partitions_scanned", lambda v: v == PARTITIONS,
                           f"== {PARTITIONS} (every month and the default)")),
             title=f"one sensor's March readings, {params['rows']:,} readings over 2025",
             columns=("partitions_scanned",), timing=Calibrated(rounds=params["rounds"])),
        Case("list", {"rows": params["rows"]}, "list_not_pruned", listed,
             (same_result_as("list_pruned", "list_not_pruned"),
              metric_check("list_pruned", "partitions_scanned", lambda v: v == 1, "== 1"),
              metric_check("list_not_pruned", "partitions_scanned", lambda v: v == 3, "== 3")),
             title="one region's events, list-partitioned by region", columns=("partitions_scanned",),
             timing=Calibrated(rounds=params["rounds"])),
        Case("retention", {"rows": params["rows"]}, "delete_rows", retention,
             (metric_check("drop_partition", "space_released_kib", lambda v: v > 0, "> 0 (its files are gone)"),
              metric_check("delete_rows", "space_released_kib", lambda v: v == 0,
                           "== 0 (deleted rows stay as dead tuples until VACUUM, the file keeps its size)")),
             timing=SelfTimed(rounds=params["retention_rounds"]), time_label="s",
             title="removing January: its rows, or its partition",
             columns=("rows_removed", "wal_kib", "space_released_kib")),
    ]


def setup(ctx: Context) -> None:
    rows = ctx.params["rows"]
    _restore(rows)
    have = sql_value("SELECT count(*) FROM part_reading") == rows == sql_value("SELECT count(*) FROM flat_reading")
    if not have or sql_value("SELECT count(*) FROM part_event") != rows // 10:
        sql("TRUNCATE part_reading, flat_reading, part_event")
        sql(f"INSERT INTO part_reading {_columns('1', str(rows), rows)}")
        sql(f"INSERT INTO flat_reading {_columns('1', str(rows), rows)}")
        sql(f"INSERT INTO part_event SELECT g, (ARRAY['eu', 'us', 'asia'])[1 + g % 3], (g * 31) % 500 "
              f"FROM generate_series(1, {rows // 10}) AS g")
    sql("VACUUM ANALYZE flat_reading")
    sql("ANALYZE part_reading")
    sql("ANALYZE part_event")


def summarize(result) -> list[str]:
    cases = {c.name: c for c in result.cases}
    out = []
    r = cases.get("range")
    if r and (p := r.variants.get("pruned")) and (n := r.variants.get("not_pruned")) and p.median_s and n.median_s:
        line = (f"One sensor's March: with the partition key in the WHERE the plan read "
                f"{p.metrics.get('partitions_scanned')} of {PARTITIONS} partitions; with the key inside "
                f"date_trunc() it read {n.metrics.get('partitions_scanned')} and took {n.median_s / p.median_s:.1f}× "
                "as long")
        flat = r.variants.get("plain_table")
        if flat and flat.median_s:
            line += f"; the plain table with its (sensor, taken_at) index took {flat.median_s / p.median_s:.2f}× "
            line += "the pruned query's time"
            if flat.median_s <= 1.2 * p.median_s:
                line += " — pruning saved work that a good index had already avoided"
        out.append(line + ".")
    lst = cases.get("list")
    if lst and (lp := lst.variants.get("list_pruned")) and lp.ratio:
        out.append(f"List partitions: WHERE region = 'eu' read {lp.metrics.get('partitions_scanned')} of 3, "
                   f"{1 / lp.ratio:.1f}× faster than lower(region) = 'eu', which read all 3.")
    ret = cases.get("retention")
    if ret and (d := ret.variants.get("delete_rows")) and (dp := ret.variants.get("drop_partition")) \
            and d.median_s and dp.median_s:
        out.append(f"Removing January ({d.metrics.get('rows_removed', 0):,} rows): DELETE took "
                   f"{d.median_s * 1000:.1f} ms and wrote {d.metrics.get('wal_kib', 0):,} KiB of WAL, giving back "
                   f"{d.metrics.get('space_released_kib', 0)} KiB; DETACH + DROP took {dp.median_s * 1000:.1f} ms, "
                   f"{dp.metrics.get('wal_kib', 0):,} KiB of WAL, and gave back "
                   f"{dp.metrics.get('space_released_kib', 0):,} KiB.")
    return out


SCENARIO = Scenario(
    name="partitioning",
    title="Declarative partitioning: pruning, and dropping a month vs DELETE",
    requires=frozenset({"postgres"}),
    profiles={
        "quick": {"rows": 240_000, "rounds": 5, "retention_rounds": 3},
        "full": {"rows": 2_400_000, "rounds": 10, "retention_rounds": 5},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(
        Metric("partitions_scanned", "partitions scanned", kind="exact", description="relations in the plan"),
        Metric("rows_removed", "rows removed", better=None),
        Metric("wal_kib", "WAL", "KiB", description="write-ahead log written by the removal (median)"),
        Metric("space_released_kib", "space released", "KiB", better="higher",
               description="table data (main fork) given back to the disk right away"),
    ),
)
