"""Cache strategies on a real Redis (Valkey): speed *and* consistency cost, measured.

Cache backend: Django's built-in `django.core.cache.backends.redis.RedisCache` (redis-py
underneath). It needs no extra dependency and is what new projects get from Django's docs;
django-redis adds features (pattern delete, compression) that these strategies do not need.

Cases
  strategies (one per read/write mix) — no_cache, cache_aside, write_through, write_behind on a
      Zipf-skewed stream of book reads and stock writes; unit = one operation.
  http — a book page through Django's request handling: uncached, `cache_page`, `{% cache %}`.
  backends — cache-aside reads on Redis vs LocMemCache vs memcached (skipped, with the install
      hint, when no memcached binary is on PATH).
  stampede — N threads read a key that just expired: naive cache-aside vs a lock (cache.add).
Every read is checked against the last committed write (stale reads are counted, not guessed);
write-behind's flusher is crashed at the end of its verified pass to record what a crash loses.
"""
from __future__ import annotations

import os
import random
import threading
import time
from bisect import bisect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.scenario import (
    Case,
    Check,
    Context,
    FixedLoops,
    Metric,
    Scenario,
    Variant,
    fmt_time,
    metric_check,
    same_result_as,
)
from scenarios import common

TTL_S = 300
KEY = "book:{}"
WB_QUEUE = "labs:wb:queue"


# -- the workload --------------------------------------------------------------------------------
def op_stream(n_ops: int, n_keys: int, read_ratio: float, skew: float, seed: int) -> list[tuple[str, int, int]]:
    """Deterministic ops: ('r', key, 0) or ('w', key, new_stock); keys Zipf(skew)-distributed.

    Popularity ranks are shuffled over the key space so the hot keys are not simply 1, 2, 3.
    """
    rng = random.Random(seed)
    weights = [1.0 / (rank ** skew) for rank in range(1, n_keys + 1)]
    cdf, total = [], 0.0
    for w in weights:
        total += w
        cdf.append(total)
    keys = list(range(1, n_keys + 1))
    rng.shuffle(keys)
    ops = []
    for i in range(n_ops):
        key = keys[min(bisect(cdf, rng.random() * total), n_keys - 1)]
        if rng.random() < read_ratio:
            ops.append(("r", key, 0))
        else:
            ops.append(("w", key, 10_000 + i))
    return ops


def expected_aside_hits(ops: Sequence[tuple[str, int, int]], start: int) -> tuple[int, int]:
    """(hits, reads) of cache-aside with delete-on-write over ops[start:], from a cold cache."""
    cached: set[int] = set()
    hits = reads = 0
    for i, (kind, key, _) in enumerate(ops):
        if kind == "r":
            if i >= start:
                reads += 1
                hits += key in cached
            cached.add(key)
        else:
            cached.discard(key)
    return hits, reads


# -- the data access every strategy shares -------------------------------------------------------
def load_book(key: int) -> dict:
    """One query: the book card (title, price, stock, publisher, tags)."""
    from django.contrib.postgres.aggregates import ArrayAgg

    from labs.bookstore.models import Book

    row = (Book.objects.filter(pk=key)
           .values("id", "title", "price_cents", "stock", "publisher__name")
           .annotate(tags=ArrayAgg("tags__name")).get())
    row["tags"] = tuple(sorted(t for t in row["tags"] if t is not None))
    return row


def write_stock(key: int, stock: int) -> None:
    from labs.bookstore.models import Book

    Book.objects.filter(pk=key).update(stock=stock)


def _stocks(n_keys: int) -> dict[int, int]:
    from labs.bookstore.models import Book

    return dict(Book.objects.filter(pk__lte=n_keys).values_list("id", "stock"))


def restore_stocks(stocks: dict[int, int]) -> None:
    """Put every book's stock back, in one statement, so each variant starts from the same data
    (public: the workshop's caching check uses it too)."""
    from labs.bookstore.seed import set_stocks

    set_stocks(stocks)


def _redis():
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"])


def reset_cache(alias: str) -> None:
    """Empty the lab's keys only: on Redis by the lab's key prefix (never FLUSHDB a shared server)."""
    from django.core.cache import caches

    cache = caches[alias]
    if alias == "default" and os.environ.get("REDIS_URL"):
        client = _redis()
        batch = list(client.scan_iter(match="labs:*", count=1000))
        if batch:
            client.delete(*batch)
        client.close()
    else:
        cache.clear()


def _cache(ctx: Context, alias: str):
    from django.core.cache import caches

    from harness.measure.counters import CountingCache

    cache = caches[alias]
    return CountingCache(cache, ctx.counters) if ctx.counting else cache


class _Tracker:
    """Counting-pass bookkeeping: truth of every key, stale reads, warm hit ratio."""

    def __init__(self, ctx: Context, initial: dict[int, int]) -> None:
        self.ctx, self.truth = ctx, dict(initial)
        ctx.metrics.update(stale_reads=0)

    def read(self, key: int, value: dict, hit: bool | None) -> None:
        if value["stock"] != self.truth[key]:
            self.ctx.metrics["stale_reads"] += 1  # any lap: a stale read is never acceptable
        if hit is not None:
            self.ctx.count("warm_reads")
            self.ctx.count("warm_hits", int(hit))

    def write(self, key: int, stock: int) -> None:
        self.truth[key] = stock

    def finish(self) -> None:
        c = self.ctx.counters
        if c.get("warm_reads"):
            self.ctx.metrics["hit_ratio"] = round(c["warm_hits"] / c["warm_reads"], 4)


# -- strategies ---------------------------------------------------------------------------------
def _strategy(name: str, alias: str = "default", namespace: str = "") -> Callable[[Context], Callable[[], Any]]:
    key_fmt = f"{namespace or name}:{KEY}"  # timed units of all variants live side by side: no shared keys

    def make(ctx: Context) -> Callable[[], Any]:
        ops = ctx_ops(ctx)
        initial = ctx_initial(ctx)
        if ctx.counting:  # verified passes run one variant at a time, each from the same start
            restore_stocks(initial)
            if name != "no_cache":
                reset_cache(alias)
        cache = _cache(ctx, alias) if name != "no_cache" else None
        tracker = _Tracker(ctx, initial) if ctx.counting else None
        flusher = _Flusher(ctx) if name == "write_behind" else None
        position = [0]

        def read(key: int) -> tuple[dict, bool | None]:
            if cache is None:
                return load_book(key), None
            value = cache.get(key_fmt.format(key))
            if value is not None:
                return value, True
            value = load_book(key)
            cache.set(key_fmt.format(key), value, TTL_S)
            return value, False

        def write(key: int, stock: int) -> None:
            if name == "write_behind":
                value = cache.get(key_fmt.format(key)) or load_book(key)
                value = {**value, "stock": stock}
                cache.set(key_fmt.format(key), value, TTL_S)
                flusher.enqueue(key, stock)
                return
            write_stock(key, stock)
            if name == "cache_aside":
                cache.delete(key_fmt.format(key))
            elif name == "write_through":
                cache.set(key_fmt.format(key), load_book(key), TTL_S)

        def unit():
            i = position[0]
            position[0] = (i + 1) % len(ops)
            kind, key, stock = ops[i]
            if kind == "r":
                value, hit = read(key)
                if tracker is not None:
                    tracker.read(key, value, hit)
                return ("r", key, value["stock"], value["title"], value["tags"])
            write(key, stock)
            if tracker is not None:
                tracker.write(key, stock)
            return ("w", key, stock)

        if ctx.counting or name != "no_cache":
            # every verified variant, no_cache too, so the counted lap starts from the same data;
            # a timed no_cache has no cache to warm (and its stream position is 0 either way)
            _warm_lap(ctx, unit, len(ops))

        @ctx.on_close
        def close() -> None:
            if flusher is not None:
                if ctx.counting:
                    flusher.crash_and_account(tracker.truth)
                else:
                    flusher.stop()
            if tracker is not None:
                tracker.finish()

        if flusher is not None and not ctx.counting:
            # the flusher drains only during write_behind's own samples: its work is charged to
            # write_behind, never to the variant timed next
            flusher.pause()
            ctx.around_samples(flusher.resume, flusher.pause)
        return unit

    return make


def _warm_lap(ctx: Context, unit: Callable[[], Any], n_ops: int) -> None:
    """Run the stream once before anything is counted or timed: both passes then see the cache's
    steady state ("after warm-up"). Its SQL is not counted (make() runs outside the counter);
    its cache counters are dropped here. Stale reads stay counted: they are errors in any lap."""
    for _ in range(n_ops):
        unit()
    if ctx.counting:
        ctx.counters.clear()
        for key in ("repeat_requests", "queries_on_repeat"):
            if key in ctx.metrics:
                ctx.metrics[key] = 0


class _Flusher:
    """Write-behind: writes are queued in Redis; a thread drains them into PostgreSQL in batches."""

    def __init__(self, ctx: Context, batch: int = 200, interval_s: float = 0.05) -> None:
        self.ctx, self.batch, self.interval_s = ctx, batch, interval_s
        self.client = _redis()
        self.client.delete(WB_QUEUE)
        self.stopping = threading.Event()
        self.running = threading.Event()
        """Cleared by pause(): the thread waits, so it never runs during another variant's sample."""
        self.running.set()
        self.busy = threading.Lock()
        self.flushed = 0
        self.max_backlog = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="write-behind-flusher", daemon=True)
        self.thread.start()

    def enqueue(self, key: int, stock: int) -> None:
        backlog = self.client.rpush(WB_QUEUE, f"{key}:{stock}")
        if self.ctx.counting and backlog > self.max_backlog:
            self.max_backlog = backlog

    def _run(self) -> None:
        from django.db import connections

        try:
            while not self.stopping.is_set():
                if not self.running.wait(0.05):
                    continue
                with self.busy:
                    if self.running.is_set():
                        self.flush_once()
                self.stopping.wait(self.interval_s)
        except BaseException as exc:  # surfaced by stop(): a dead flusher must not go unnoticed
            self.error = exc
        finally:
            connections.close_all()

    def flush_once(self) -> int:
        items = self.client.lpop(WB_QUEUE, self.batch)
        if not items:
            return 0
        latest: dict[int, int] = {}
        for raw in items:
            key, stock = raw.decode().split(":")
            latest[int(key)] = int(stock)  # later writes to a key win, as in the queue order
        restore_stocks(latest)
        self.flushed += len(items)
        return len(items)

    def pause(self) -> None:
        """Stop draining; returns once a flush in progress has finished."""
        self.running.clear()
        with self.busy:
            pass

    def resume(self) -> None:
        self.running.set()

    def stop(self) -> None:
        """Orderly shutdown: stop the thread, then drain what is left."""
        self.running.set()
        self.stopping.set()
        self.thread.join()
        while self.flush_once():
            pass
        self.client.close()
        if self.error is not None:
            raise RuntimeError("write-behind flusher failed") from self.error

    def crash_and_account(self, truth: dict[int, int]) -> None:
        """Simulate a crash: the flusher dies now, and we count what PostgreSQL never got."""
        self.stopping.set()
        self.thread.join()
        queued = [raw.decode().split(":") for raw in self.client.lrange(WB_QUEUE, 0, -1)]
        db = _stocks(max(truth))
        lost = {k for k, v in truth.items() if db.get(k) != v}
        last_queued = {int(k): int(stock) for k, stock in queued}  # later writes to a key win
        # a queued write can repeat what PostgreSQL already holds (a replayed lap writes the same
        # value again); the books the queue would still *change* are the ones a crash loses
        changing = {k for k, stock in last_queued.items() if db.get(k) != stock}
        m = self.ctx.metrics
        m.update(max_unflushed=self.max_backlog, pending_at_crash=len(queued), lost_keys_at_crash=len(lost),
                 pending_keys_at_crash=len(changing), queued_books_at_crash=len(last_queued),
                 lost_outside_queue=len(lost - changing), flushed=self.flushed)
        # recovery (not part of the crash): drain, and prove the queue held exactly what was missing
        while self.flush_once():
            pass
        db = _stocks(max(truth))
        m["lost_after_recovery"] = sum(1 for k, v in truth.items() if db.get(k) != v)
        self.client.close()


def ctx_ops(ctx: Context) -> list[tuple[str, int, int]]:
    return ctx_ops_for(ctx.params)


def ctx_ops_for(p) -> list[tuple[str, int, int]]:
    """The case's op stream: the same for every variant, the checks and the expectations."""
    return op_stream(p["ops"], p["keys"], p["read_ratio"], p["skew"], p["seed_stream"])


class Shared:
    """What the whole run shares (setup's value): the seeded stock of each book, read once per
    key range, so every variant starts from the same data."""

    def __init__(self) -> None:
        self._initial: dict[int, dict[int, int]] = {}

    def initial(self, keys: int) -> dict[int, int]:
        if keys not in self._initial:
            self._initial[keys] = _stocks(keys)
        return self._initial[keys]


def ctx_initial(ctx: Context) -> dict[int, int]:
    return ctx.shared.initial(ctx.params["keys"])


# -- HTTP: per-view and template-fragment caching -------------------------------------------------
def _http(path: str, cached: bool) -> Callable[[Context], Callable[[], Any]]:
    def make(ctx: Context) -> Callable[[], Any]:
        from django.test import Client

        if ctx.counting:
            reset_cache("default")
        client = Client()
        ops = [k for kind, k, _ in ctx_ops(ctx) if kind == "r"]
        position = [0]
        seen: set[int] = set()
        if ctx.counting:
            ctx.metrics.update(queries_on_repeat=0, repeat_requests=0)

        def unit():
            i = position[0]
            position[0] = (i + 1) % len(ops)
            key = ops[i]
            before = ctx.counters.get("queries", 0)
            response = client.get(path.format(key))
            if response.status_code != 200:
                raise RuntimeError(f"GET {path.format(key)} -> {response.status_code}")
            if ctx.counting and key in seen:
                ctx.metrics["repeat_requests"] += 1
                ctx.metrics["queries_on_repeat"] += ctx.counters.get("queries", 0) - before
            seen.add(key)
            return _page_text(response.content)

        if cached:
            _warm_lap(ctx, unit, len(ops))

        @ctx.on_close
        def close() -> None:
            if ctx.counting and ctx.metrics["repeat_requests"]:
                ctx.metrics["queries_per_repeat"] = round(
                    ctx.metrics["queries_on_repeat"] / ctx.metrics["repeat_requests"], 3)
        return unit

    return make


def _page_text(content: bytes) -> str:
    return " ".join(content.decode().split())


# -- stampede -----------------------------------------------------------------------------------
class _Crowd:
    """`n` persistent threads that run `fn(i)` together each round (a barrier releases them)."""

    def __init__(self, n: int, fn: Callable[[int], Any]) -> None:
        self.n, self.fn = n, fn
        self.start, self.done = threading.Barrier(n + 1), threading.Barrier(n + 1)
        self.results: list[Any] = [None] * n
        self.errors: list[BaseException] = []
        self.stop = False
        self.threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _worker(self, i: int) -> None:
        from django.db import connections

        try:
            while True:
                self.start.wait()
                if self.stop:
                    return
                try:
                    self.results[i] = self.fn(i)
                except BaseException as exc:
                    self.errors.append(exc)
                self.done.wait()
        finally:
            connections.close_all()

    def run(self) -> list[Any]:
        self.start.wait()
        self.done.wait()
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} stampede reader(s) failed") from self.errors[0]
        return list(self.results)

    def close(self) -> None:
        self.stop = True
        self.start.wait()
        for t in self.threads:
            t.join()


def recompute_report(work: int) -> int:
    """The expensive value behind the hot key: a CPU-bound aggregate in PostgreSQL."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT sum(hashtext(g::text)::bigint %% 1000) FROM generate_series(1, %s) g", [work])
        return int(cur.fetchone()[0])


def _stampede(protected: bool) -> Callable[[Context], Callable[[], Any]]:
    def make(ctx: Context) -> Callable[[], Any]:
        from django.core.cache import caches

        key, lock = "report:hot", "report:hot:lock"
        work, readers = ctx.params["recompute_work"], ctx.params["readers"]
        counter_lock = threading.Lock()
        tally = {"recomputes": 0, "waits": 0}

        def recompute() -> int:
            with counter_lock:
                tally["recomputes"] += 1
            return recompute_report(work)

        thread_caches: dict[int, object] = {}

        def reader(_i: int) -> int:
            cache = caches["default"]  # per thread: Django's cache handler is thread-local
            thread_caches.setdefault(id(cache), cache)
            value = cache.get(key)
            if value is not None:
                return value
            if not protected:
                value = recompute()
                cache.set(key, value, TTL_S)
                return value
            if cache.add(lock, 1, 10):  # only one reader wins the lock and recomputes
                try:
                    value = recompute()
                    cache.set(key, value, TTL_S)
                finally:
                    cache.delete(lock)
                return value
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:  # the others wait for the winner's value
                time.sleep(0.001)
                value = cache.get(key)
                if value is not None:
                    with counter_lock:
                        tally["waits"] += 1
                    return value
            return recompute()  # the winner died: fall back rather than fail

        crowd = _Crowd(readers, reader)
        main_cache = caches["default"]

        expiries = [0]

        def unit():
            main_cache.delete(key)  # the hot key has just expired
            expiries[0] += 1
            return tuple(sorted(set(crowd.run())))

        @ctx.on_close
        def close() -> None:
            crowd.close()
            main_cache.delete(key)
            for cache in thread_caches.values():  # each reader thread's own client: its sockets closed
                if cache is not main_cache:
                    cache.close()
                    for pool in getattr(getattr(cache, "_cache", None), "_pools", {}).values():
                        pool.disconnect()
            # a metric, not a counter: how many naive readers miss depends on thread timing
            if ctx.counting and expiries[0]:
                ctx.metrics["recomputes"] = round(tally["recomputes"] / expiries[0], 3)
        return unit

    return make


# -- the declaration ------------------------------------------------------------------------------
def _hit_ratio_check(variant: str, ops: Sequence, tolerance: float = 0.01) -> Check:
    hits, reads = expected_aside_hits(list(ops) * 2, len(ops))  # the counted lap follows a warm lap
    expected = hits / reads if reads else 0.0

    def fn(runs):
        got = runs[variant].metrics.get("hit_ratio")
        return (got is not None and abs(got - expected) <= tolerance,
                f"hit ratio after warm-up {got} vs {expected:.4f} expected from the stream (±{tolerance})")
    return Check(f"hit ratio ≈ {expected:.1%}", variant, fn)


def _queries_per_read_check(variant: str, ops: Sequence) -> Check:
    """Cache-aside reads cost a query only on a miss: queries per read ≈ miss ratio."""
    hits, reads = expected_aside_hits(list(ops) * 2, len(ops))
    writes = len(ops) - reads
    expected = (reads - hits) + writes  # one query per miss, one per write

    def fn(runs):
        got = runs[variant].counters.get("queries", 0)
        return got == expected, f"{got:g} queries for {reads} reads + {writes} writes (expected {expected})"
    return Check("queries = misses + writes", variant, fn)


def _lost_at_crash_check() -> Check:
    """What a crash of the write-behind flusher lost is exactly what its queue still held: the
    books whose last write PostgreSQL lacks are the books whose last queued write differs from
    what PostgreSQL has, and no lost book is missing from the queue."""
    def fn(runs):
        m = runs["write_behind"].metrics
        lost, queued = m.get("lost_keys_at_crash"), m.get("pending_keys_at_crash")
        outside = m.get("lost_outside_queue")
        ok = lost is not None and queued is not None and lost == queued and outside == 0
        return ok, (f"{lost} books lost at the crash; the {m.get('pending_at_crash')} queued writes "
                    f"({m.get('queued_books_at_crash')} books) would change {queued}; {outside} lost books "
                    "were not in the queue")
    return Check("lost at crash == queued at crash", "write_behind", fn)


STRATEGY_DOCS = {
    "no_cache": "every read and write goes to PostgreSQL",
    "cache_aside": "read cache, on miss read DB and set with TTL; write DB then delete the key",
    "write_through": "write DB and set the new value in the cache in the same operation",
    "write_behind": "write the cache and a Redis queue; a thread batches the queue into the DB",
}


def cases(params) -> list[Case]:
    out = []
    base = {k: params[k] for k in ("ops", "keys", "skew", "seed_stream")}
    for mix in params["read_ratios"]:
        p = {**base, "read_ratio": mix}
        ops = ctx_ops_for(p)
        variants = tuple(Variant(n, _strategy(n), STRATEGY_DOCS[n]) for n in STRATEGY_DOCS)
        checks = [same_result_as(n, "no_cache") for n in STRATEGY_DOCS if n != "no_cache"]
        checks += [metric_check(n, "stale_reads", lambda v: v == 0, "== 0") for n in STRATEGY_DOCS]
        checks += [_hit_ratio_check("cache_aside", ops), _queries_per_read_check("cache_aside", ops),
                   metric_check("write_behind", "lost_after_recovery", lambda v: v == 0, "== 0"),
                   _lost_at_crash_check()]
        out.append(Case(f"mix={round(mix * 100)}/{round((1 - mix) * 100)}", p, "no_cache", variants, tuple(checks),
                        units=p["ops"], timing=FixedLoops(params["ops_per_sample"]), title=f"strategies · {mix:.0%} reads / {1 - mix:.0%} writes · "
                                              f"Zipf s={p['skew']} over {p['keys']} books",
                        columns=("queries", "hit_ratio", "stale_reads", "max_unflushed", "lost_keys_at_crash")))

    read_only = {**base, "read_ratio": 1.0}
    http_ops = max(50, params["ops"] // 4)
    http = {**read_only, "ops": http_ops}
    out.append(Case(
        "http", http, "view_uncached",
        (Variant("view_uncached", _http("/books/{}/", False), "book page, 3 queries per request"),
         Variant("per_view", _http("/books/{}/cached/", True), "cache_page: whole response cached by URL"),
         Variant("template_fragment", _http("/books/{}/fragment/", True), "{% cache %} around tags + reviews")),
        (same_result_as("per_view", "view_uncached"), same_result_as("template_fragment", "view_uncached"),
         metric_check("per_view", "queries_on_repeat", lambda v: v == 0, "== 0 (a cached response runs no SQL)"),
         metric_check("template_fragment", "queries_per_repeat", lambda v: v == 1, "== 1 (only the book)")),
        units=http_ops, timing=FixedLoops(max(1, params["ops_per_sample"] // 5)), title=f"http · a book page through Django's request handling ({http_ops} requests)",
        columns=("queries", "queries_per_repeat")))

    backend_variants = (
        Variant("no_cache", _strategy("no_cache"), "PostgreSQL every time"),
        Variant("redis", _strategy("cache_aside", "default", "redis"), "Django RedisCache on Valkey (network hop)"),
        Variant("locmem", _strategy("cache_aside", "locmem", "locmem"), "LocMemCache: in-process, per worker"),
        Variant("memcached", _strategy("cache_aside", "memcached", "memcached"), "PyMemcacheCache",
                requires=frozenset({"memcached"})),
    )
    out.append(Case(
        "backends", read_only, "no_cache", backend_variants,
        tuple(same_result_as(n, "no_cache") for n in ("redis", "locmem", "memcached")),
        units=params["ops"], timing=FixedLoops(params["ops_per_sample"]), title="backends · cache-aside reads (100 % reads)",
        columns=("queries", "hit_ratio")))

    stampede = {"readers": params["readers"], "recompute_work": params["recompute_work"]}
    out.append(Case(
        "stampede", stampede, "naive",
        (Variant("naive", _stampede(False), "every reader that misses recomputes"),
         Variant("locked", _stampede(True), "cache.add() lock: one recomputes, the others wait")),
        (same_result_as("locked", "naive"),
         metric_check("locked", "recomputes", lambda v: v == 1, "== 1 per expiry"),
         metric_check("naive", "recomputes", lambda v: v is not None and v >= 2,
                      f">= 2 per expiry with {stampede['readers']} readers")),
        units=5, title=f"stampede · {params['readers']} readers hit a key that just expired",
        columns=("recomputes",)))
    return out


def setup(ctx: Context) -> Shared:
    common.seed_catalog_for(ctx, at_least=ctx.params["keys"])
    ctx.on_close(_forget_keys)  # a shared Redis is left as it was found: no `labs:*` keys behind
    return Shared()


def _forget_keys() -> None:
    import redis

    if os.environ.get("REDIS_URL"):
        try:
            reset_cache("default")
        except (redis.exceptions.RedisError, OSError):
            pass  # the server is gone (a run it ended): no keys are left to forget


def summarize(result) -> list[str]:
    lines = []
    for case in result.cases:
        v = case.variants
        if case.name.startswith("mix="):
            base, aside = v.get("no_cache"), v.get("cache_aside")
            if base and aside and aside.ratio and aside.median_s:
                lines.append(
                    f"{case.name}: cache_aside answered an op in {_t(aside.median_s)} vs {_t(base.median_s)} from "
                    f"PostgreSQL ({1 / aside.ratio:.1f}× faster), {aside.metrics.get('hit_ratio', 0):.0%} hits "
                    f"after warm-up, {aside.metrics.get('stale_reads', 0)} stale reads."
                )
            wb = v.get("write_behind")
            if wb and wb.ratio:
                lines.append(
                    f"{case.name}: write_behind ran {1 / wb.ratio:.1f}× faster than no_cache but up to "
                    f"{wb.metrics.get('max_unflushed', '?')} writes sat unflushed; a crash at the end lost "
                    f"{wb.metrics.get('lost_keys_at_crash', '?')} book updates "
                    f"({wb.metrics.get('pending_at_crash', '?')} queued writes)."
                )
        elif case.name == "http":
            pv, fr = v.get("per_view"), v.get("template_fragment")
            if pv and fr and pv.ratio and fr.ratio:
                lines.append(
                    f"http: cache_page served the page {_speed(pv.ratio)} with {pv.metrics.get('queries_on_repeat')} "
                    f"queries over {pv.metrics.get('repeat_requests')} repeated requests; the {{% cache %}} fragment "
                    f"{_speed(fr.ratio)}, {fr.metrics.get('queries_per_repeat')} queries per repeated page."
                )
        elif case.name == "backends":
            parts = [f"{n} {_t(x.median_s)}" for n, x in v.items() if x.median_s]
            skipped = [n for n, x in v.items() if x.skipped]
            lines.append("backends (time per read): " + ", ".join(parts)
                         + (f"; skipped: {', '.join(skipped)}" if skipped else "") + ".")
        elif case.name == "stampede":
            nv, lk = v.get("naive"), v.get("locked")
            if nv and lk and lk.ratio:
                lines.append(
                    f"stampede: {case.params['readers']} readers of an expired key made "
                    f"{nv.metrics.get('recomputes', 0):g} recomputations per expiry naively vs "
                    f"{lk.metrics.get('recomputes', 0):g} with a lock; per expiry the lock was "
                    f"{_speed(lk.ratio)}."
                )
    return lines


def _t(seconds: float | None) -> str:
    return fmt_time(seconds)


def _speed(ratio: float) -> str:
    return f"{1 / ratio:.1f}× faster" if ratio < 1 else f"{ratio:.1f}× slower"


SCENARIO = Scenario(
    name="caching",
    title="Cache strategies on real Redis: speed vs consistency",
    requires=frozenset({"postgres", "redis"}),
    optional=frozenset({"memcached"}),
    profiles={
        "quick": {"ops": 360, "keys": 300, "skew": 1.1, "read_ratios": (0.95, 0.8), "readers": 8,
                  "recompute_work": 100_000, "seed_stream": 7, "ops_per_sample": 30, "catalog": common.CATALOG["quick"]},
        "full": {"ops": 5000, "keys": 5000, "skew": 1.1, "read_ratios": (0.95, 0.8), "readers": 16,
                 "recompute_work": 300_000, "seed_stream": 7, "ops_per_sample": 100, "catalog": common.CATALOG["full"]},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(
        Metric("hit_ratio", "hit %", better="higher", kind="exact", percent=True,
               description="cache hits / reads after the warm lap (checked against the op stream)"),
        Metric("stale_reads", "stale", kind="exact", description="reads that returned a value older than the "
                                                                 "last committed write"),
        Metric("max_unflushed", "unflushed", description="the longest write-behind queue seen"),
        Metric("pending_at_crash", "pending@crash", description="queued writes when the flusher was crashed"),
        Metric("lost_keys_at_crash", "lost@crash", description="books whose last write PostgreSQL lacked at the crash"),
        Metric("pending_keys_at_crash", "queued changes@crash",
               description="books whose last queued write differs from PostgreSQL at the crash"),
        Metric("queued_books_at_crash", "queued books@crash", description="distinct books in the queue at the crash"),
        Metric("lost_outside_queue", "lost outside queue", kind="exact",
               description="books PostgreSQL lacked at the crash with no queued write to restore them"),
        Metric("lost_after_recovery", "lost after recovery", kind="exact"),
        Metric("flushed", "flushed"),
        Metric("queries_per_repeat", "q/repeat", kind="exact", description="queries per request of a page seen before"),
        Metric("queries_on_repeat", "queries on repeats"),
        Metric("repeat_requests", "repeat requests"),
        Metric("recomputes", "recomputes", description="recomputations per expiry (depends on thread timing)"),
        Metric("warm_reads", "warm reads", kind="exact"),
        Metric("warm_hits", "warm hits", better="higher", kind="exact"),
    ),
)
