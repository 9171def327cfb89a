"""bulk_writes, locking, pagination and async_views at tiny sizes on the real stack: the
deterministic facts (rows written, signals, query counts, lost updates, duplicates, rows read)."""
from __future__ import annotations

import pytest

from harness.measure.runner import RunOptions, run_scenario
from harness.project import registry

pytestmark = pytest.mark.stack


def _run(stack, budget, name, params):
    res = run_scenario(registry.get(name), RunOptions((name,), params=params, budget=budget), stack)
    assert res.ok, [(c.variant, c.name, c.detail) for c in res.checks if not c.ok]
    return {c.name: c for c in res.cases}


def test_bulk_writes(stack, tiny_budget):
    cases = _run(stack, tiny_budget, "bulk_writes", {"rows": "120"})
    ins = cases["insert"].variants
    assert ins["save_loop"].counters["queries"] == 120 and ins["save_loop"].counters["signals"] == 120
    assert ins["bulk_create_1000"].counters["queries"] == 1 and ins["bulk_create_1000"].counters.get("signals", 0) == 0
    assert ins["bulk_create_50"].counters["queries"] == 3
    assert all(v.metrics["written"] == [120, sum(i % 100 for i in range(120))] for v in ins.values())
    upd = cases["update"].variants
    assert upd["queryset_update_f"].counters["queries"] == 1
    assert all(v.metrics["written"] == [120, 120] for v in upd.values())


def test_locking(stack, tiny_budget):
    cases = _run(stack, tiny_budget, "locking", {"threads": "4", "increments": "6", "jobs": "16", "rounds": "1"})
    counter = cases["counter"].variants
    assert counter["read_modify_write"].metrics["lost_updates"] > 0
    for name in ("f_expression", "select_for_update", "optimistic_version", "repeatable_read_retry",
                 "serializable_retry"):
        assert counter[name].metrics["lost_updates"] == 0, name
    assert counter["serializable_retry"].metrics["retries"] > 0
    assert cases["job_queue"].variants["skip_locked"].metrics["duplicate_claims"] == 0
    dead = cases["deadlock"].variants
    assert dead["opposite_order"].metrics["deadlocks"] >= 1 and dead["opposite_order"].metrics["lost_updates"] == 0
    assert dead["same_order"].metrics["deadlocks"] == 0


def test_pagination(stack, tiny_budget):
    cases = _run(stack, tiny_budget, "pagination", {"rows": "20000", "deep_page": "200", "size": "20",
                                                    "inserts": "5"})
    deep = cases["deep_page"].variants
    assert deep["offset_only"].metrics["rows_read"] >= 199 * 20
    assert deep["keyset"].metrics["rows_read"] <= 21
    assert deep["offset_paginator"].counters["queries"] == 2 and deep["keyset"].counters["queries"] == 1
    # DRF's paginators, driven as a list view drives them: page number and limit/offset are COUNT + OFFSET,
    # the cursor is keyset (one query, size + 1 rows: the extra row tells DRF there is a next page)
    for name in ("drf_page_number", "drf_limit_offset"):
        assert deep[name].counters["queries"] == 2 and deep[name].metrics["rows_read"] >= 199 * 20, name
    assert deep["drf_cursor"].counters["queries"] == 1 and deep["drf_cursor"].metrics["rows_read"] == 21
    assert "Index" in deep["drf_cursor"].metrics["plan"]
    assert cases["shallow_page"].variants["drf_cursor"].counters["queries"] == 1
    cons = cases["consistency"].variants
    assert cons["offset"].metrics["duplicates"] == 5 and cons["keyset"].metrics["duplicates"] == 0


def test_async_views(stack, tiny_budget):
    from labs.bookstore.seed import seed_techempower

    seed_techempower(42)
    cases = _run(stack, tiny_budget, "async_views", {"users": "6", "burst_s": "0.6", "warmup_s": "0.2",
                                                      "rounds": "1", "upstream_ms": "20"})
    for case in cases.values():
        for v in case.variants.values():
            assert v.metrics["requests"] > 0 and v.metrics["failures"] == 0, (case.name, v.name)
    import os

    assert "LABS_UPSTREAM_URL" not in os.environ  # torn down


def test_serializers(stack, tiny_budget):
    cases = _run(stack, tiny_budget, "serializers", {"page": "6", "flat_page": "10"})
    nested = cases["nested"].variants
    # DRF's N+1: a query per row for the publisher, the author, the tags and the review count
    assert nested["drf_naive"].counters["queries"] == 1 + 4 * 6
    assert all(nested[n].counters["queries"] == 2 for n in ("drf_model", "drf_plain", "hand_dict"))
    assert nested["values_dict"].counters["queries"] == 1
    assert {c.name for c in cases["render"].checks} and all(c.ok for c in cases["render"].checks)
    assert all(v.counters["queries"] == 1 for v in cases["flat"].variants.values())


def test_aggregates(stack, tiny_budget):
    cases = _run(stack, tiny_budget, "aggregates", {"writes": "5", "rounds": "2", "refresh_rounds": "2"})
    assert all(v.counters["queries"] == 1 for v in cases["read"].variants.values())
    w = cases["write"].variants
    assert w["counter_app"].counters["queries"] == 2 and w["counter_trigger"].counters["queries"] == 1
    assert w["counter_trigger"].metrics["differs_from_live"] == 0
    assert w["insert_only"].metrics["differs_from_live"] > 0  # the view is stale until REFRESH
    # the application's counter missed exactly the reviews the other write paths inserted (their
    # measured writes, and one each in the counting pass)
    app = w["counter_app"].metrics
    assert app["missed_writes"] == app["others_wrote"] == w["insert_only"].metrics["writes"] + \
        w["counter_trigger"].metrics["writes"] + 2
    r = cases["refresh"].variants
    assert r["refresh"].metrics["stale_before"] > 0 and r["refresh"].metrics["stale_after"] == 0


def test_partitioning(stack, tiny_budget):
    cases = _run(stack, tiny_budget, "partitioning", {"rows": "24000", "rounds": "2", "retention_rounds": "2"})
    rng = cases["range"].variants
    assert rng["pruned"].metrics["partitions_scanned"] == 1 and rng["not_pruned"].metrics["partitions_scanned"] == 13
    lst = cases["list"].variants
    assert lst["list_pruned"].metrics["partitions_scanned"] == 1
    ret = cases["retention"].variants
    d, p = ret["delete_rows"].metrics, ret["drop_partition"].metrics
    assert d["rows_removed"] == p["rows_removed"] > 0  # the same month, both ways
    assert p["space_released_kib"] > 0 and d["space_released_kib"] == 0
    assert d["wal_kib"] > p["wal_kib"]  # every deleted row is logged; a DROP logs the catalog change


def test_graphql(stack, tiny_budget):
    cases = _run(stack, tiny_budget, "graphql", {"first": "5"})
    queries = {(c, v): cases[c].variants[v].counters["queries"] for c in cases for v in cases[c].variants}
    # naive: a query per book for its author, and per author (once per book) for their books
    assert [queries[(f"depth={d}", "naive")] for d in (1, 2, 3)] == [1, 6, 11]
    assert [queries[(f"depth={d}", "dataloader")] for d in (1, 2, 3)] == [1, 2, 3]
    assert [queries[(f"depth={d}", "optimizer")] for d in (1, 2, 3)] == [1, 1, 2]


def test_replicas(stack, tiny_budget):
    cases = _run(stack, tiny_budget, "replicas", {"writes": "5", "pairs": "8", "threads": "2", "reads": "5",
                                                  "rounds": "2"})
    lag = cases["lag"].variants["streaming"]
    assert not lag.skipped and lag.metrics["visible"] == lag.metrics["writes"] > 0
    ry = cases["read_your_writes"].variants
    assert ry["router"].metrics["reads_on_replica"] == ry["router"].metrics["pairs"]  # every read went there
    assert ry["pin_after_write"].metrics["stale_reads"] == 0 and ry["pin_after_write"].metrics["reads_on_replica"] == 0
    assert ry["using_default"].metrics["stale_reads"] == 0
    reads = cases["reads"].variants
    assert 0 < reads["split"].metrics["reads_on_replica"] < reads["replica"].metrics["reads_on_replica"]
    assert reads["primary_only"].metrics["reads_on_replica"] == 0
