"""Deterministic counters, taken in an untimed pass so they cost the measured path nothing.

SQL is counted with `connection.execute_wrapper()` (Django's documented instrumentation hook),
never by forcing the debug cursor. Cache operations are counted by a thin proxy around a Django
cache that tells hits from misses with a sentinel default.
"""
from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

_MISSING = object()


class QueryCounter:
    """An execute_wrapper that counts queries and rows and keeps the SQL text."""

    def __init__(self, counters: Counter, keep_sql: bool = False) -> None:
        self.counters = counters
        self.keep_sql = keep_sql
        self.statements: list[tuple[str, Any]] = []
        self.shapes: Counter = Counter()
        """Normalized SQL -> how many times it ran: which statements, not only how many."""

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        self.counters["queries"] += 1
        cursor = context.get("cursor")
        # Rows returned (statements with a result set); writes report their affected rows apart.
        rowcount = getattr(cursor, "rowcount", -1) or 0
        if rowcount > 0:
            key = "rows" if getattr(cursor, "description", None) is not None else "rows_written"
            self.counters[key] += rowcount
        self.shapes[normalize_sql(sql)] += 1
        if self.keep_sql:
            self.statements.append((sql, params))
        return result


@contextlib.contextmanager
def count_queries(counters: Counter, keep_sql: bool = False, using: str = "default") -> Iterator[QueryCounter]:
    from django.db import connections

    counter = QueryCounter(counters, keep_sql)
    with connections[using].execute_wrapper(counter):
        yield counter


@contextlib.contextmanager
def count_gc(counters: Counter) -> Iterator[None]:
    """Garbage collections (any generation) while the block runs -> counters["gc_collections"].
    Starts from a full collection, so the count depends on what the block allocates, not on what
    ran before it."""
    import gc

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            counters["gc_collections"] += 1

    gc.collect()
    counters["gc_collections"] += 0  # present, even when nothing was collected: 0 is a result
    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


PG_STATS_SQL = """SELECT coalesce(sum(shared_blks_hit + shared_blks_read + local_blks_hit + local_blks_read), 0),
       coalesce(sum(wal_records), 0), coalesce(sum(wal_bytes), 0), (SELECT dealloc FROM pg_stat_statements_info)
FROM pg_stat_statements WHERE dbid = %s"""


def _pg_totals(using: str = "default") -> tuple[float, float, float, float] | None:
    """Totals of this database's statements. The database's oid is looked up first, on its own, so
    the snapshot statement itself touches no buffer (it would count in the next snapshot)."""
    from django.db import DatabaseError, connections

    conn = connections[using]
    try:
        with conn.cursor() as cur:
            dbid = getattr(conn, "_labs_dbid", None)
            if dbid is None:  # once per connection: only the totals query runs between two snapshots
                cur.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
                dbid = conn._labs_dbid = cur.fetchone()[0]
            cur.execute(PG_STATS_SQL, [dbid])
            return tuple(float(x) for x in cur.fetchone())
    except DatabaseError:
        return None  # pg_stat_statements not loaded or not created here: nothing to count


@contextlib.contextmanager
def count_postgres(counters: Counter, using: str = "default") -> Iterator[None]:
    """What PostgreSQL did for the block, from pg_stat_statements (every backend of this database,
    so work done by servers and threads the variant drives counts too): buffers touched (shared +
    local, hit or read) -> `pg_buffers`, WAL records written -> `pg_wal_records`, WAL bytes ->
    `pg_wal_bytes`. Nothing is recorded if the extension is missing or evicted entries in between
    (pg_stat_statements.max) would make the difference wrong."""
    before = _pg_totals(using)
    try:
        yield
    finally:
        after = _pg_totals(using) if before is not None else None
        if before is not None and after is not None and after[3] == before[3]:
            counters["pg_buffers"] += after[0] - before[0]
            counters["pg_wal_records"] += after[1] - before[1]
            counters["pg_wal_bytes"] += after[2] - before[2]


def normalize_sql(sql: str) -> str:
    """SQL with literals and whitespace folded, for stable comparison and display."""
    sql = re.sub(r"'(?:[^']|'')*'", "'?'", sql)
    sql = re.sub(r"\b\d+\b", "?", sql)
    sql = re.sub(r"\(\s*(?:%s|\?)(?:\s*,\s*(?:%s|\?))*\s*\)", "(…)", sql)
    return re.sub(r"\s+", " ", sql).strip()


def plan_nodes(root: dict) -> Iterator[dict]:
    """Every node of a JSON plan tree, depth first."""
    yield root
    for child in root.get("Plans", ()):
        yield from plan_nodes(child)


def walk_plan(root: dict) -> tuple[list[str], list[str]]:
    """(node types, index names) of a JSON plan tree, depth first."""
    nodes = list(plan_nodes(root))
    return [n["Node Type"] for n in nodes], [n["Index Name"] for n in nodes if n.get("Index Name")]


class WritesData(Exception):
    """EXPLAIN ANALYZE of a statement in a read-only transaction failed: the statement writes."""


def plan_json(sql: str, params: Any, analyze: bool = False, using: str = "default", writes: bool = False) -> dict:
    """The root ("Plan") of EXPLAIN (FORMAT JSON) for one statement.

    `analyze` runs it (with BUFFERS) inside a transaction that is always rolled back, READ ONLY
    unless `writes` says the caller accepts a write being executed (and undone) — so explaining a
    statement never changes data: a write in a read-only transaction raises WritesData instead."""
    from django.db import DatabaseError, connections, transaction

    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    conn = connections[using]
    if not analyze:
        with conn.cursor() as cur:
            cur.execute(f"EXPLAIN ({options}) " + sql, params)
            plan = cur.fetchone()[0]
    else:
        try:
            outermost = not conn.in_atomic_block  # inside a caller's transaction this is a savepoint,
            with transaction.atomic(using=using), conn.cursor() as cur:  # rolled back all the same
                if outermost and not writes:
                    cur.execute("SET TRANSACTION READ ONLY")
                cur.execute(f"EXPLAIN ({options}) " + sql, params)
                plan = cur.fetchone()[0]
                transaction.set_rollback(True, using=using)
        except DatabaseError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == "25006":  # read_only_sql_transaction
                raise WritesData(normalize_sql(sql)) from None
            raise
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    return plan[0]["Plan"]


def modifies(plan: dict) -> bool:
    """True when a plan (or a CTE in it) inserts, updates, deletes or merges rows."""
    if plan.get("Node Type") == "ModifyTable":
        return True
    return any(modifies(child) for child in plan.get("Plans", ()))


def explain(sql: str, params: Any, using: str = "default") -> dict:
    """EXPLAIN (FORMAT JSON) of one statement: top node, the scan nodes, indexes, cost."""
    root = plan_json(sql, params, using=using)
    nodes, indexes = walk_plan(root)
    return {
        "sql": normalize_sql(sql),
        "top_node": root["Node Type"],
        "nodes": nodes,
        "indexes": indexes,
        "total_cost": root.get("Total Cost"),
        "plan_rows": root.get("Plan Rows"),
    }


class CountingCache:
    """Wraps a Django cache; counts gets as hits/misses, sets and deletes into `counters`."""

    def __init__(self, cache: Any, counters: Counter) -> None:
        self._cache = cache
        self._counters = counters

    def get(self, key: str, default: Any = None) -> Any:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            self._counters["cache_misses"] += 1
            return default
        self._counters["cache_hits"] += 1
        return value

    def get_many(self, keys: list[str]) -> dict:
        found = self._cache.get_many(keys)
        self._counters["cache_hits"] += len(found)
        self._counters["cache_misses"] += len(keys) - len(found)
        return found

    def set(self, key: str, value: Any, timeout: Any = None) -> None:
        self._counters["cache_sets"] += 1
        if timeout is None:
            self._cache.set(key, value)
        else:
            self._cache.set(key, value, timeout)

    def set_many(self, mapping: dict, timeout: Any = None) -> list:
        self._counters["cache_sets"] += len(mapping)
        return self._cache.set_many(mapping) if timeout is None else self._cache.set_many(mapping, timeout)

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        added = self._cache.add(key, value) if timeout is None else self._cache.add(key, value, timeout)
        self._counters["cache_adds" if added else "cache_add_conflicts"] += 1
        return added

    def delete(self, key: str) -> bool:
        self._counters["cache_deletes"] += 1
        return self._cache.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)
