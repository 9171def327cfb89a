"""Read replicas and a database router: a real streaming replica of the stack's PostgreSQL (the
embedded stack starts one with pg_basebackup; an external stack gives REPLICA_URL), a second
Django alias, and a router sending reads to it and writes to the primary. Replication lag
measured (bytes behind, time until a written row is visible there), the read-your-own-write bug
counted and its fixes (pin to the primary after a write; `using("default")`), and read throughput
with and without the replica.
"""
from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from pathlib import Path

from harness.scenario import Case, Check, Context, Metric, Scenario, SelfTimed, Variant, metric_check
from scenarios import common

NEEDS = frozenset({"replica"})


class ReplicaRouter:
    """Reads to the replica, writes to the primary. `pin_s` > 0: after a write, this thread reads
    from the primary for that long (the read-your-own-write fix). `split`: reads alternate."""

    def __init__(self, mode: str = "replica", pin_s: float = 0.0) -> None:
        self.mode, self.pin_s = mode, pin_s
        self.local = threading.local()
        self.reads_on_replica = 0
        self._lock = threading.Lock()

    def db_for_read(self, model, **hints):
        if self.pin_s and time.monotonic() < getattr(self.local, "pinned_until", 0.0):
            return "default"
        if self.mode == "split":
            n = getattr(self.local, "n", 0)
            self.local.n = n + 1
            if n % 2:
                return "default"
        with self._lock:
            self.reads_on_replica += 1
        return "replica"

    def db_for_write(self, model, **hints):
        if self.pin_s:
            self.local.pinned_until = time.monotonic() + self.pin_s
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, **hints):
        return db == "default"


class routed:
    """Install `router` for the block (Django reads its routers once: the instance is swapped)."""

    def __init__(self, router: ReplicaRouter | None) -> None:
        self.router = router

    def __enter__(self):
        from django.db import router as django_router

        self.saved = django_router.__dict__.get("routers")
        django_router.routers = [self.router] if self.router else []
        return self.router

    def __exit__(self, *exc):
        from django.db import router as django_router

        if self.saved is None:
            django_router.__dict__.pop("routers", None)
        else:
            django_router.routers = self.saved


# -- lag ----------------------------------------------------------------------------------------------
def _lag(ctx: Context):
    from django.db import connections

    from labs.jobs.models import Order

    p = ctx.params
    seen_ms: list[float] = []
    behind: list[int] = []
    visible = 0

    def unit() -> float:
        nonlocal visible
        tag = f"lag-{uuid.uuid4().hex[:8]}"
        t_all = time.perf_counter()
        for i in range(p["writes"]):
            order = Order.objects.using("default").create(batch=tag, total_cents=i)
            t0 = time.perf_counter()
            timed = i % 2 == 0  # every other write: its visibility timed from the commit, nothing between
            if not timed:  # the others: how far the replica's replay is behind right after the write
                with connections["default"].cursor() as cur:
                    cur.execute("SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0) "
                                "FROM pg_stat_replication")
                    behind.append(int(cur.fetchone()[0]))
            while not Order.objects.using("replica").filter(pk=order.pk).exists():
                if time.perf_counter() - t0 > 10:
                    break
                time.sleep(0.0002)
            else:
                visible += 1
                if timed:
                    seen_ms.append((time.perf_counter() - t0) * 1000)
        ctx.metrics["writes"] = ctx.metrics.get("writes", 0) + p["writes"]
        return (time.perf_counter() - t_all) / p["writes"]

    @ctx.on_close
    def close() -> None:
        m = ctx.metrics
        m["visible"] = visible
        if seen_ms:
            ordered = sorted(seen_ms)
            m["visible_p50_ms"] = round(statistics.median(ordered), 2)
            m["visible_p95_ms"] = round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2)
        if behind:
            m["behind_max_bytes"] = max(behind)
    return unit


# -- read your own write --------------------------------------------------------------------------------
def _ryow(mode: str):
    def make(ctx: Context):
        from labs.jobs.models import Order

        p = ctx.params
        router = ReplicaRouter("replica", pin_s=p["pin_s"] if mode == "pin_after_write" else 0.0)

        def unit() -> float:
            tag = f"ryow-{uuid.uuid4().hex[:8]}"
            t0 = time.perf_counter()
            stale = 0
            with routed(router):
                for i in range(p["pairs"]):
                    order = Order.objects.create(batch=tag, total_cents=i)  # router: the primary
                    reads = Order.objects.using("default") if mode == "using_default" else Order.objects
                    if not reads.filter(pk=order.pk).exists():  # right after: is my write there?
                        stale += 1
            m = ctx.metrics
            m["pairs"] = m.get("pairs", 0) + p["pairs"]
            m["stale_reads"] = m.get("stale_reads", 0) + stale
            m["reads_on_replica"] = router.reads_on_replica
            return (time.perf_counter() - t0) / p["pairs"]
        return unit
    return make


# -- read throughput ------------------------------------------------------------------------------------
def _reads(mode: str):
    def make(ctx: Context):
        from django.db import connections

        from labs.bookstore.models import Book

        p = ctx.params
        router = None if mode == "primary_only" else ReplicaRouter("split" if mode == "split" else "replica")
        rates: list[float] = []

        def reader(n: int, seed: int) -> None:
            try:
                for i in range(n):
                    Book.objects.filter(price_cents__gt=(seed * 131 + i * 17) % 5000).count()
            finally:
                connections.close_all()  # this thread's connections

        def unit() -> float:
            threads = [threading.Thread(target=reader, args=(p["reads"], k)) for k in range(p["threads"])]
            t0 = time.perf_counter()
            with routed(router):
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            elapsed = time.perf_counter() - t0
            rates.append(p["threads"] * p["reads"] / elapsed)
            return elapsed / (p["threads"] * p["reads"])

        @ctx.on_close
        def close() -> None:
            if rates:
                ctx.metrics["reads_per_s"] = round(statistics.median(rates))
            ctx.metrics["reads_on_replica"] = router.reads_on_replica if router else 0
        return unit
    return make


def _all_visible() -> Check:
    def fn(runs):
        m = runs["streaming"].metrics
        return m.get("visible") == m.get("writes") and bool(m.get("writes")), (
            f"{m.get('visible')} of {m.get('writes')} writes became visible on the replica")
    return Check("every write reached the replica", "streaming", fn)


def cases(params) -> list[Case]:
    rounds = SelfTimed(rounds=params["rounds"])
    lag = Case("lag", {k: params[k] for k in ("writes",)}, "streaming",
               (Variant("streaming", lambda ctx: _lag(ctx), requires=NEEDS,
                        description="a row written on the primary, polled on the replica until it is there (every "
                                    "other write timed; the others sample the WAL not yet replayed)"),),
               (_all_visible(),), timing=rounds, time_label="s/write",
               title=f"{params['writes']} writes per round, each waited for on the replica",
               columns=("visible", "visible_p50_ms", "visible_p95_ms", "behind_max_bytes"))
    ryow = tuple(Variant(m, _ryow(m), requires=NEEDS, description=d) for m, d in (
        ("router", "write (router: primary), then read at once (router: replica)"),
        ("pin_after_write", f"the router reads from the primary for {params['pin_s']:g} s after this thread wrote"),
        ("using_default", "the read right after the write says .using('default')")))
    ryow_case = Case("read_your_writes", {k: params[k] for k in ("pairs", "pin_s")}, "router", ryow,
                     (metric_check("router", "reads_on_replica", lambda v: v > 0, "> 0 (the router sent reads there)"),
                      metric_check("pin_after_write", "stale_reads", lambda v: v == 0, "== 0"),
                      metric_check("pin_after_write", "reads_on_replica", lambda v: v == 0,
                                   "== 0 (every read followed a write)"),
                      metric_check("using_default", "stale_reads", lambda v: v == 0, "== 0")),
                     timing=rounds, time_label="s/pair",
                     title=f"{params['pairs']} write-then-read pairs per round",
                     columns=("pairs", "stale_reads", "reads_on_replica"))
    reads = tuple(Variant(m, _reads(m), requires=NEEDS if m != "primary_only" else frozenset(), description=d)
                  for m, d in (("primary_only", "every read on the primary"),
                               ("replica", "the router sends every read to the replica"),
                               ("split", "the router alternates reads between primary and replica")))
    reads_case = Case("reads", {k: params[k] for k in ("threads", "reads")}, "primary_only", reads,
                      (metric_check("replica", "reads_on_replica", lambda v: v > 0, "> 0"),),
                      timing=rounds, time_label="s/read",
                      title=f"{params['threads']} threads × {params['reads']} reads (a COUNT over the books)",
                      columns=("reads_per_s", "reads_on_replica"))
    return [lag, ryow_case, reads_case]


def attach_replica(log_to: Path | None = None, apply_delay_ms: int = 0):
    """A replica for this process: REPLICA_URL's, or (embedded stack) a streaming replica started
    now, applying each commit `apply_delay_ms` late; a Django alias "replica" for it, caught up
    with the primary. Returns the function that detaches it (and stops a replica it started)."""
    from django.conf import settings
    from django.db import connections

    from harness.project.djangoenv import database_from_url
    from harness.stack import embedded
    from harness.stack.replica import Replica
    from labs.bookstore.models import Book

    url = os.environ.get("REPLICA_URL")
    replica = None
    if not url:  # the embedded stack: a streaming replica of its PostgreSQL
        replica = Replica(os.environ["DATABASE_URL"], embedded.runtime_dir() / f"replica-{os.getpid()}",
                          apply_delay_ms)
        try:
            replica.start()
        except BaseException:
            replica.stop(keep_log=log_to)
            raise
        url = replica.url

    def detach() -> None:
        try:
            if "replica" in settings.DATABASES:
                connections["replica"].close()
            settings.DATABASES.pop("replica", None)
            try:
                delattr(connections._connections, "replica")
            except AttributeError:
                pass
        finally:
            if replica is not None:
                replica.stop(keep_log=log_to)

    try:
        settings.DATABASES["replica"] = {**database_from_url(url), "TEST": {"MIRROR": "default"}}
        connections.configure_settings(settings.DATABASES)
        deadline = time.monotonic() + 30  # the primary's rows there before the first read
        while Book.objects.using("replica").count() != Book.objects.using("default").count():
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not catch up with the primary within 30 s")
            time.sleep(0.05)
    except BaseException:
        detach()
        raise
    return detach


def setup(ctx: Context) -> None:
    """The catalog; the replica (started here on the embedded stack) and its Django alias."""
    common.seed_catalog_for(ctx)
    if "replica" in ctx.components:
        ctx.on_close(attach_replica(ctx.artifacts_dir() / "replica.log"))


def summarize(result) -> list[str]:
    cases = {c.name: c for c in result.cases}
    out = []
    lag = cases.get("lag")
    if lag and (s := lag.variants.get("streaming")) and not s.skipped and s.metrics.get("visible_p50_ms") is not None:
        m = s.metrics
        out.append(f"Streaming replication on loopback: a committed row was visible on the replica after "
                   f"{m['visible_p50_ms']:.2f} ms (p50), {m['visible_p95_ms']:.2f} ms (p95); at most "
                   f"{m.get('behind_max_bytes', 0):,} bytes of WAL were not yet replayed right after a write.")
    ry = cases.get("read_your_writes")
    if ry and (r := ry.variants.get("router")) and not r.skipped and ry.passed("router"):
        m = r.metrics
        line = (f"Read-your-own-write through the router: {m.get('stale_reads', 0)} of {m.get('pairs', 0)} reads "
                "right after a write missed it on the replica")
        pin, use = ry.variants.get("pin_after_write"), ry.variants.get("using_default")
        if pin and use and not pin.skipped:
            line += (f"; pinned to the primary after a write: {pin.metrics.get('stale_reads', 0)}; "
                     f"with using('default'): {use.metrics.get('stale_reads', 0)}")
        out.append(line + ".")
    rd = cases.get("reads")
    if rd:
        rates = {n: v.metrics.get("reads_per_s") for n, v in rd.variants.items()
                 if not v.skipped and v.metrics.get("reads_per_s")}
        if len(rates) > 1:
            out.append(f"Read throughput, {rd.params['threads']} threads: "
                       + ", ".join(f"{n} {r:,} reads/s" for n, r in rates.items())
                       + f" — on one machine of {os.cpu_count()} CPUs the replica competes for the same cores; "
                       "its capacity counts when it runs elsewhere.")
    return out


SCENARIO = Scenario(
    name="replicas",
    title="Read replicas and a database router: lag, read-your-own-write, throughput",
    requires=frozenset({"postgres"}),
    optional=NEEDS,
    profiles={
        "quick": {"writes": 30, "pairs": 40, "pin_s": 2.0, "threads": 4, "reads": 40, "rounds": 3,
                  "catalog": common.CATALOG["quick"]},
        "full": {"writes": 200, "pairs": 200, "pin_s": 2.0, "threads": 8, "reads": 200, "rounds": 5,
                 "catalog": common.CATALOG["full"]},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(
        Metric("writes", "writes", better=None),
        Metric("visible", "visible", better="higher", description="writes seen on the replica"),
        Metric("visible_p50_ms", "visible p50", "ms", kind="statistical",
               description="commit on the primary → row readable on the replica"),
        Metric("visible_p95_ms", "visible p95", "ms", kind="statistical"),
        Metric("behind_max_bytes", "behind max", "B", description="WAL not yet replayed, right after a write"),
        Metric("pairs", "pairs", better=None),
        Metric("stale_reads", "stale reads", description="reads right after a write that did not see it"),
        Metric("reads_on_replica", "reads on replica", better=None),
        Metric("reads_per_s", "reads/s", better="higher", kind="statistical"),
    ),
)
