"""caching on real Valkey + PostgreSQL (+ memcached when installed), tiny sizes, deterministic facts."""
from __future__ import annotations

import shutil

import pytest

from harness.measure.runner import RunOptions, run_scenario
from harness.project import registry
from scenarios import caching

pytestmark = pytest.mark.stack

PARAMS = {"ops": "120", "keys": "40", "ops_per_sample": "20", "readers": "6", "recompute_work": "200000",
          "catalog": "60"}


@pytest.fixture(scope="module")
def result(stack, tiny_budget):
    opts = RunOptions(("caching",), params=PARAMS, budget=tiny_budget)
    return run_scenario(registry.get("caching"), opts, stack)


def _case(result, name):
    return next(c for c in result.cases if c.name == name)


def test_every_check_passes(result):
    failed = [(c.variant, c.name, c.detail) for c in result.checks if not c.ok]
    assert not failed
    assert result.complete and result.ok


@pytest.mark.parametrize("mix", ["mix=95/5", "mix=80/20"])
def test_strategies_zero_stale_reads_and_same_values(result, mix):
    case = _case(result, mix)
    for name in ("no_cache", "cache_aside", "write_through", "write_behind"):
        assert case.variants[name].metrics["stale_reads"] == 0, name
    same = [c for c in case.checks if c.name == "same result as no_cache"]
    assert sorted(c.variant for c in same) == ["cache_aside", "write_behind", "write_through"]
    assert all(c.ok for c in same), [(c.variant, c.detail) for c in same if not c.ok]


def test_cache_aside_counts_match_the_stream(result):
    case = _case(result, "mix=80/20")
    ops = caching.ctx_ops_for(case.params)
    hits, reads = caching.expected_aside_hits(list(ops) * 2, len(ops))
    writes = len(ops) - reads
    aside = case.variants["cache_aside"]
    assert aside.metrics["hit_ratio"] == round(hits / reads, 4)
    # counted, not guessed: CountingCache hits/misses and SQL per op are exact
    assert aside.counters["cache_misses"] * len(ops) == pytest.approx(reads - hits + 0)
    assert aside.counters["queries"] * len(ops) == pytest.approx(reads - hits + writes)
    assert aside.counters["cache_deletes"] * len(ops) == pytest.approx(writes)
    assert case.variants["no_cache"].counters["queries"] == 1.0


def test_write_through_always_hits_and_write_behind_queues(result):
    case = _case(result, "mix=80/20")
    assert case.variants["write_through"].metrics["hit_ratio"] == 1.0
    wb = case.variants["write_behind"].metrics
    assert wb["max_unflushed"] >= 1
    # the crash left writes in the queue; recovery drained exactly what was missing
    assert wb["pending_at_crash"] >= wb["lost_keys_at_crash"] == wb["pending_keys_at_crash"]
    assert wb["lost_outside_queue"] == 0
    assert wb["lost_after_recovery"] == 0


def test_http_cached_responses_run_no_sql(result):
    case = _case(result, "http")
    assert case.variants["view_uncached"].counters["queries"] == 3
    assert case.variants["per_view"].metrics["queries_on_repeat"] == 0
    assert case.variants["template_fragment"].metrics["queries_per_repeat"] == 1


def test_backends_memcached_measured_or_skipped_with_hint(result):
    case = _case(result, "backends")
    mc = case.variants["memcached"]
    if shutil.which("memcached") or shutil.os.path.exists("/usr/bin/memcached"):
        assert mc.skipped is None and mc.metrics["hit_ratio"] == 1.0
    else:
        assert "apt-get install memcached" in mc.skipped
    assert case.variants["locmem"].metrics["hit_ratio"] == 1.0


def test_memcached_absent_is_skipped_not_dropped(stack, tiny_budget):
    from dataclasses import replace

    info = replace(stack, urls={k: v for k, v in stack.urls.items() if k != "memcached"})
    opts = RunOptions(("caching",), params=PARAMS, budget=tiny_budget, variants=("memcached",))
    res = run_scenario(registry.get("caching"), opts, info)
    mc = _case(res, "backends").variants["memcached"]
    assert mc.skipped and "install memcached" in mc.skipped
    assert res.ok  # a skipped variant is not a failure


def test_stampede_lock_recomputes_once(result):
    case = _case(result, "stampede")
    assert case.variants["locked"].metrics["recomputes"] == 1
    assert case.variants["naive"].metrics["recomputes"] >= 2


def test_write_behind_crash_mid_way_records_loss(stack, result):
    """Crash the flusher while writes are queued: the loss is measured against PostgreSQL."""
    import time

    from harness.scenario import Context

    ctx = Context({}, 42, "quick", frozenset(stack.urls), counting=True)
    truth = caching._stocks(20)
    flusher = caching._Flusher(ctx, interval_s=3600)  # drains once at start, then sleeps: a stalled flusher
    time.sleep(0.2)
    keys = [1, 2, 3, 2, 5, 1, 7]
    for i, key in enumerate(keys):
        truth[key] = 50_000 + i
        flusher.enqueue(key, 50_000 + i)
    flusher.enqueue(9, truth[9])  # a replayed write of what PostgreSQL already holds: queued, not lost
    flusher.crash_and_account(truth)
    m = ctx.metrics
    assert m["pending_at_crash"] == len(keys) + 1
    assert m["lost_keys_at_crash"] == len(set(keys))  # PostgreSQL never saw these books' new stock
    assert m["pending_keys_at_crash"] == len(set(keys))  # the queued writes that would change a book
    assert m["queued_books_at_crash"] == len(set(keys)) + 1
    assert m["lost_outside_queue"] == 0
    assert m["max_unflushed"] == len(keys) + 1
    assert m["lost_after_recovery"] == 0  # the queue held exactly what was missing
    assert caching._stocks(20) == truth


def test_op_stream_is_deterministic_and_skewed():
    a = caching.op_stream(2000, 100, 0.9, 1.1, seed=1)
    assert a == caching.op_stream(2000, 100, 0.9, 1.1, seed=1)
    assert a != caching.op_stream(2000, 100, 0.9, 1.1, seed=2)
    from collections import Counter

    counts = Counter(k for _, k, _ in a)
    top10 = sum(c for _, c in counts.most_common(10))
    assert top10 > 0.4 * len(a)  # Zipf: a few keys take most of the traffic
    writes = sum(1 for op, _, _ in a if op == "w")
    assert 0.05 * len(a) < writes < 0.15 * len(a)
