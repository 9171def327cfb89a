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

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        self.counters["queries"] += 1
        cursor = context.get("cursor")
        # Rows returned (statements with a result set); writes report their affected rows apart.
        rowcount = getattr(cursor, "rowcount", -1) or 0
        if rowcount > 0:
            key = "rows" if getattr(cursor, "description", None) is not None else "rows_written"
            self.counters[key] += rowcount
        if self.keep_sql:
            self.statements.append((sql, params))
        return result


@contextlib.contextmanager
def count_queries(counters: Counter, keep_sql: bool = False, using: str = "default") -> Iterator[QueryCounter]:
    from django.db import connections

    counter = QueryCounter(counters, keep_sql)
    with connections[using].execute_wrapper(counter):
        yield counter


def normalize_sql(sql: str) -> str:
    """SQL with literals and whitespace folded, for stable comparison and display."""
    sql = re.sub(r"'(?:[^']|'')*'", "'?'", sql)
    sql = re.sub(r"\b\d+\b", "?", sql)
    sql = re.sub(r"\(\s*(?:%s|\?)(?:\s*,\s*(?:%s|\?))*\s*\)", "(…)", sql)
    return re.sub(r"\s+", " ", sql).strip()


def walk_plan(root: dict) -> tuple[list[str], list[str]]:
    """(node types, index names) of a JSON plan tree, depth first."""
    nodes: list[str] = []
    indexes: list[str] = []

    def walk(node: dict) -> None:
        nodes.append(node["Node Type"])
        if node.get("Index Name"):
            indexes.append(node["Index Name"])
        for child in node.get("Plans", ()):
            walk(child)

    walk(root)
    return nodes, indexes


def plan_json(sql: str, params: Any, analyze: bool = False, using: str = "default") -> dict:
    """The root ("Plan") of EXPLAIN (FORMAT JSON) for one statement; `analyze` runs it (with BUFFERS)."""
    from django.db import connections

    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    with connections[using].cursor() as cur:
        cur.execute(f"EXPLAIN ({options}) " + sql, params)
        plan = cur.fetchone()[0]
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    return plan[0]["Plan"]


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
