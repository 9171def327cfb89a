"""Background work with Celery: pools, brokers, prefetch, lost and repeated work, transactions,
granularity and retries — on real Celery workers the harness starts (child processes on the lab's
stack, loopback only, one per configuration and queue, stopped however the run ends).

Every task accounts for itself in a ledger in PostgreSQL (labs.jobs): the checks count enqueued =
done + lost from it, never from Celery's own bookkeeping.

Cases
  io, cpu — the same tasks on solo, prefork, threads and gevent pools: tasks/s, enqueue→done
      latency, worker CPU and memory; results equal across pools.
  brokers — Valkey vs RabbitMQ (started by the lab when `rabbitmq-server` is installed), small and
      large payloads.
  prefetch — long and short tasks mixed over two workers: how long short tasks wait behind long
      ones with the default prefetch, prefetch 1, and prefetch 1 + acks_late.
  crash — a worker process SIGKILLed mid-task (after its side effect, before it finished): early
      ack loses the task, acks_late alone too, acks_late + reject_on_worker_lost runs it again (and
      a non-idempotent task credits twice); an idempotency key makes the rerun harmless. Plus the
      whole worker killed: an unacknowledged Redis message waits for the visibility timeout.
  transactions — enqueue inside transaction.atomic() vs transaction.on_commit().
  granularity — one task per item vs chunks vs a chord; results stored vs ignored.
  retries — a flaky upstream: immediate retries vs full-jitter exponential backoff.
"""
from __future__ import annotations

import os
import signal
import statistics
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from harness.measure.celeryrig import TaskRig, WorkerConfig, check_worker, ledger, send, settled
from harness.scenario import (
    Case,
    Check,
    Context,
    Metric,
    Scenario,
    SelfTimed,
    Variant,
    metric_check,
    same_result_as,
)

POOLS = {
    "solo": WorkerConfig("solo", "solo", 1),
    "prefork_2": WorkerConfig("prefork_2", "prefork", 2),
    "threads_8": WorkerConfig("threads_8", "threads", 8),
    "gevent_32": WorkerConfig("gevent_32", "gevent", 32),
}
BROKERS = {
    "valkey": WorkerConfig("broker_valkey", "threads", 8),
    "rabbitmq": WorkerConfig("broker_rabbitmq", "threads", 8, broker="rabbitmq"),
}
PREFETCH = {
    "prefetch_4": (WorkerConfig("prefetch_4", "prefork", 1, prefetch=4), "jobs.work", ""),
    "prefetch_1": (WorkerConfig("prefetch_1", "prefork", 1, prefetch=1), "jobs.work", ""),
    "prefetch_1_acks_late": (WorkerConfig("prefetch_1", "prefork", 1, prefetch=1), "jobs.work_late",
                             "task acks_late=True"),
}
"""(workers, task, the task's own options). Each runs as two workers of one pool process on one
queue: the worker's main process reserves messages for its busy child, and what one worker hoards,
the idle other cannot run. (A solo pool would not show it: it blocks its own consumer while a task
runs.) prefetch_1 and prefetch_1_acks_late share their workers: acks_late is the task's."""
CRASH_WORKER = WorkerConfig("crash", "prefork", 1)
CRASH = {
    "early_ack": (CRASH_WORKER, "jobs.credit", False, "child"),
    "acks_late": (CRASH_WORKER, "jobs.credit_late", False, "child"),
    "acks_late_reject": (CRASH_WORKER, "jobs.credit_reject", False, "child"),
    "idempotent": (CRASH_WORKER, "jobs.credit_reject", True, "child"),
    "worker_killed": (WorkerConfig("crash_worker", "prefork", 1, acks_late=True, visibility_s=2.0), "jobs.credit",
                      True, "worker"),
}
"""(worker, task, idempotent task, what is killed: the pool process running the task, or the whole
worker). The first four share one worker: acknowledgement is each task's own option
(`@shared_task(acks_late=True, reject_on_worker_lost=True)`), as it is in most code bases."""
TASK_OPTIONS = {"jobs.credit": "", "jobs.credit_late": "task acks_late=True",
                "jobs.credit_reject": "task acks_late=True, reject_on_worker_lost=True"}
SETTLE_S = 30.0


def _batch(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)
    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99)}


def _account(rows: list[dict], enqueued: int, m: dict) -> None:
    """Add a batch's ledger to the variant's tallies: enqueued, done, failed, lost, duplicates."""
    done = sum(1 for r in rows if r["status"] == "done")
    failed = sum(1 for r in rows if r["status"] == "failed")
    for key, value in (("enqueued", enqueued), ("done", done), ("failed", failed),
                       ("lost", enqueued - done - failed), ("duplicates", sum(1 for r in rows if r["applied"] > 1))):
        m[key] = m.get(key, 0) + value


# -- io / cpu / brokers: a batch of tasks of one kind --------------------------------------------------
def _work_variant(config: WorkerConfig, kind: str, payload: int = 0, peers: tuple[WorkerConfig, ...] = ()):
    def make(ctx: Context):
        rig: TaskRig = ctx.shared
        p = ctx.params
        if peers:
            rig.prepare(peers)
        worker, app = rig.worker(config), rig.app(config)
        size = {"cpu": p.get("cpu_size", 0), "orm": p.get("orm_size", 0)}.get(kind, 0)
        n = p["tasks"]
        body = "x" * payload

        def batch(count: int) -> tuple[list[dict], float]:
            tag = _batch(f"{kind}-{config.name}")
            t0 = time.time()
            for key in range(count):
                send(app, worker.queue, "jobs.work", tag, key, kind, size, body)
            rows = settled(tag, count, SETTLE_S)
            check_worker(worker)
            _account(rows, count, ctx.metrics)
            end = max((r["done_at"] for r in rows if r["done_at"]), default=t0 + SETTLE_S)
            return rows, end - t0

        if ctx.counting:
            ctx.metrics["boot_s"] = round(worker.boot_s, 2)
            return lambda: [(r["key"], r["result"]) for r in batch(min(n, 20))[0]]
        latencies: list[float] = []
        rates, cpu = [], []

        def unit() -> float:
            c0 = worker.cpu_s()
            rows, elapsed = batch(n)
            latencies.extend((r["done_at"] - r["sent_at"]) * 1000 for r in rows if r["done_at"])
            rates.append(n / elapsed)
            cpu.append((worker.cpu_s() - c0) / elapsed)
            return elapsed / n

        @ctx.on_close
        def close() -> None:
            if rates:
                ctx.metrics.update(tasks_per_s=round(statistics.median(rates), 1), **_percentiles(latencies),
                                   worker_cpu=round(statistics.median(cpu), 2), worker_uss_mib=worker.uss_mib())
        return unit
    return make


# -- prefetch: head-of-line blocking -------------------------------------------------------------------
def _prefetch_variant(name: str):
    config, task, _options = PREFETCH[name]

    def make(ctx: Context):
        rig: TaskRig = ctx.shared
        p = ctx.params
        rig.prepare([c for base, _t, _o in PREFETCH.values() for c in (base, _replica(base))])
        workers = [rig.worker(config), rig.worker(_replica(config))]
        app = rig.app(config)
        queue = workers[0].queue
        # one long task first, then short ones: the worker that took the long one reserves what its
        # prefetch window allows, and those short tasks wait for the long one while the other worker idles
        pattern = [p["long_ms"] if i % p["long_every"] == 0 else p["short_ms"] for i in range(p["mix_tasks"])]

        def batch() -> tuple[list[dict], float]:
            tag = _batch(name)
            t0 = time.time()
            for key, ms in enumerate(pattern):
                send(app, queue, task, tag, key, "sleep", ms)
            rows = settled(tag, len(pattern), SETTLE_S)
            for w in workers:
                check_worker(w)
            _account(rows, len(pattern), ctx.metrics)
            end = max((r["done_at"] for r in rows if r["done_at"]), default=t0 + SETTLE_S)
            return rows, end - t0

        if ctx.counting:  # judged on the measured batches' ledgers (no result to compare across variants)
            return lambda: "the prefetch case is judged on its ledger tallies"
        short: list[float] = []
        spans: list[float] = []

        def unit() -> float:
            rows, elapsed = batch()
            waits = [(r["done_at"] - r["sent_at"]) * 1000 for r in rows
                     if r["done_at"] and pattern[r["key"]] == p["short_ms"]]
            short.extend(waits)
            m = ctx.metrics
            # a short task that waited most of the long one's time was reserved behind it (the other
            # worker drains the queue well within that time)
            m["stuck"] = m.get("stuck", 0) + sum(1 for w in waits if w > 0.75 * p["long_ms"])
            m["batches"] = m.get("batches", 0) + 1
            spans.append(elapsed)
            return elapsed

        @ctx.on_close
        def close() -> None:
            if short:
                q = _percentiles(short)
                ctx.metrics.update(short_p50_ms=q["p50_ms"], short_p95_ms=q["p95_ms"],
                                   makespan_s=round(statistics.median(spans), 3))
        return unit
    return make


def _replica(config: WorkerConfig) -> WorkerConfig:
    """A second worker on the same queue (its own name, same settings)."""
    return replace(config, name=config.name + "_b", queue=config.queue or config.name)


# -- crash: SIGKILL mid-task ---------------------------------------------------------------------------
@dataclass
class CrashRound:
    """One batch whose first task's process was SIGKILLed inside its crash window."""

    rows: list[dict]
    killed_mid_task: bool
    killed_at: float
    started: float
    balance: int
    gone: bool = False
    """The victim ended lost with no copy of its message left in the broker (observed)."""

    def drain_s(self) -> float:
        return max((r["done_at"] for r in self.rows if r["done_at"]), default=time.time()) - self.started


def crash_round(rig: TaskRig, config: WorkerConfig, tag: str, n: int, hold_ms: int, task: str, args: tuple,
                target: str = "child") -> CrashRound:
    """Send `n` credit tasks (`task`, each crediting account `tag`), SIGKILL the process running the
    first once its effect is applied (`target`: the pool process, or the whole worker — then a new
    worker takes over the queue), and wait for the others and, for a grace period, the victim."""
    from labs.jobs.models import Account

    worker, app = rig.worker(config), rig.app(config)
    Account.objects.create(name=tag, balance=0)
    t0 = time.time()
    ids = [send(app, worker.queue, task, tag, key, *args).id for key in range(n)]
    victim = _wait_applied(tag, 0, worker)
    killed_at = time.time()
    if target == "child":
        os.kill(victim, signal.SIGKILL)
    else:  # the whole worker: main process and pool, no warm shutdown
        for proc in worker.family():
            proc.kill()
    dead = _wait_dead(victim)
    mid_task = dead and _was_running(tag, 0)
    if target == "worker":
        rig.workers.pop(config.name, None)
        worker.stop()
        # its replacement (a supervisor restarting it) comes up once the visibility timeout has
        # passed: kombu restores unacknowledged messages at a worker's start-up (and then rarely)
        time.sleep(max(0.0, killed_at + (config.visibility_s or 0) + 0.5 - time.time()))
        rig.worker(config)
    # the others finish; the victim runs again, or is gone from the broker (lost)
    settled(tag, n - 1, SETTLE_S, statuses=("done",))
    rows, gone = _victim_settled(rig, config, tag, n, ids[0], grace_s=2.0 + hold_ms / 1000)
    return CrashRound(rows, mid_task, killed_at, t0, Account.objects.get(name=tag).balance, gone)


def _victim_settled(rig: TaskRig, config: WorkerConfig, tag: str, n: int, task_id: str, grace_s: float,
                    gone_for_s: float = 0.5) -> tuple[list[dict], bool]:
    """The batch's rows once the killed task (key 0) is done again — or lost: the broker holds no
    copy of its message (none queued, none delivered and unacknowledged) for `gone_for_s` with no new
    attempt started, so nothing can run it again. Observed, not assumed; a broker the rig cannot read
    (RabbitMQ) gets the whole grace period."""
    deadline = time.monotonic() + grace_s
    first = next((r for r in ledger(tag) if r["key"] == 0), None)
    attempts = first["attempts"] if first else 0
    gone_since = None
    with rig.broker_reader(config) as copies:
        while True:
            rows = ledger(tag)
            if sum(1 for r in rows if r["status"] == "done") >= n or time.monotonic() > deadline:
                return rows, False
            victim = next((r for r in rows if r["key"] == 0), None)
            held = copies(task_id)
            if held == 0 and victim is not None and victim["attempts"] == attempts:
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since >= gone_for_s:
                    return rows, True
            else:
                gone_since = None
            time.sleep(0.02)


def _crash_variant(name: str):
    config, task, idempotent, target = CRASH[name]

    def make(ctx: Context):
        rig: TaskRig = ctx.shared
        p = ctx.params
        n, hold, amount = p["crash_tasks"], p["hold_ms"], 100
        rig.prepare([c for c, _task, _i, _t in CRASH.values()])

        def unit() -> float:
            tag = _batch(name)
            r = crash_round(rig, config, tag, n, hold, task, (tag, amount, hold, idempotent), target)
            m = ctx.metrics
            m["kills"] = m.get("kills", 0) + 1
            m["killed_mid_task"] = m.get("killed_mid_task", 0) + int(r.killed_mid_task)
            _account(r.rows, n, m)
            first = next((row for row in r.rows if row["key"] == 0), None)
            if target == "worker" and first and first["status"] == "done":
                m["redelivered_after_s"] = round(first["started_at"] - r.killed_at, 2)
                m["visibility_s"] = config.visibility_s
            m["gone_from_broker"] = m.get("gone_from_broker", 0) + int(r.gone)
            m["reruns"] = m.get("reruns", 0) + sum(1 for row in r.rows if row["attempts"] > 1)
            m["credited_twice"] = m.get("credited_twice", 0) + sum(max(0, row["applied"] - 1) for row in r.rows)
            m["balance_error"] = m.get("balance_error", 0) + (r.balance - amount * n)
            return r.drain_s()

        if ctx.counting:
            return lambda: "the crash case is judged on its ledger tallies"
        return unit
    return make


def _wait_applied(batch: str, key: int, worker, timeout_s: float = 20.0) -> int:
    """The pid of the worker process that has applied task `key`'s effect and is still inside it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = [r for r in ledger(batch) if r["key"] == key and r["status"] == "running" and r["applied"] >= 1]
        if rows:
            pid = rows[0]["pid"]
            if pid in {p.pid for p in worker.family()}:
                return pid
        time.sleep(0.005)
    raise RuntimeError(f"task {batch}:{key} never reached its crash window; worker log: {worker.log_path}")


def _wait_dead(pid: int, timeout_s: float = 10.0) -> bool:
    try:
        psutil.Process(pid).wait(timeout_s)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return False
    return True


def _was_running(batch: str, key: int) -> bool:
    """At the kill the ledger showed the task started and its effect applied, not finished."""
    rows = [r for r in ledger(batch) if r["key"] == key]
    return bool(rows) and rows[0]["applied"] >= 1 and (rows[0]["status"] == "running" or rows[0]["attempts"] > 1)


# -- transactions ----------------------------------------------------------------------------------------
TX_DB_WORKER = WorkerConfig("tx_db", "db_worker")


def _tx_variant(mode: str):
    def make(ctx: Context):
        from django.db import transaction

        from labs.jobs.db_tasks import read_order
        from labs.jobs.models import Order

        rig: TaskRig = ctx.shared
        p = ctx.params
        db_worker, celery_worker = replace(TX_DB_WORKER, poll_s=p["db_poll_s"]), WorkerConfig("tx", "threads", 4)
        rig.prepare([db_worker, celery_worker])
        config = db_worker if mode == "django_db" else celery_worker
        worker, app = rig.worker(config), rig.app(celery_worker)
        latencies: list[float] = []

        def unit() -> float:
            tag = _batch(f"tx-{mode}")
            t0 = time.time()
            for key in range(p["orders"]):
                with transaction.atomic():
                    order = Order.objects.create(batch=tag, total_cents=100 + key)
                    if mode == "django_db":  # a row in the tasks table, written in this transaction
                        read_order.enqueue(tag, key, time.time(), order.pk)
                    elif mode == "on_commit":
                        transaction.on_commit(lambda k=key, o=order.pk: send(app, worker.queue, "jobs.read_order",
                                                                             tag, k, o))
                    else:
                        send(app, worker.queue, "jobs.read_order", tag, key, order.pk)
                    time.sleep(p["commit_after_ms"] / 1000)  # the rest of the request, before COMMIT
            rows = settled(tag, p["orders"], SETTLE_S)
            check_worker(worker)
            m = ctx.metrics
            _account(rows, p["orders"], m)
            m["missing_rows"] = m.get("missing_rows", 0) + sum(1 for r in rows if r["result"] == -1)
            m["orders"] = m.get("orders", 0) + p["orders"]
            latencies.extend((r["done_at"] - r["sent_at"]) * 1000 for r in rows if r["done_at"])
            return (time.time() - t0) / p["orders"]

        @ctx.on_close
        def close() -> None:
            if latencies:
                q = _percentiles(latencies)
                ctx.metrics.update(p50_ms=q["p50_ms"], p95_ms=q["p95_ms"])
        return unit
    return make


# -- granularity and results --------------------------------------------------------------------------
GRANULARITY = (WorkerConfig("gran", "threads", 8), WorkerConfig("gran_results", "threads", 8, results=True))


def _granularity_variant(mode: str):
    config = GRANULARITY[1] if mode in ("per_item_results", "chord") else GRANULARITY[0]

    def make(ctx: Context):
        rig: TaskRig = ctx.shared
        p = ctx.params
        rig.prepare(GRANULARITY)
        worker, app = rig.worker(config), rig.app(config)
        n, size = p["items"], p["chunk"]

        def unit() -> float:
            tag = _batch(f"gran-{mode}")
            values = list(range(n))
            keys_before = _result_keys(rig) if config.results else 0
            t0 = time.time()
            if mode == "chunks":
                parts = [values[i:i + size] for i in range(0, n, size)]
            else:
                parts = [[v] for v in values]
            if mode == "chord":  # started by a task on the worker, which holds the chord's results
                send(app, worker.queue, "jobs.fan_out", tag, -2, parts, worker.queue)
            else:
                for k, part in enumerate(parts):
                    send(app, worker.queue, "jobs.items", tag, k, part)
            expected = len(parts) + (mode == "chord")  # ledger rows: the items (+ the chord's total)
            rows = settled(tag, expected, SETTLE_S)
            check_worker(worker)
            m = ctx.metrics
            _account(rows, expected, m)
            item_rows = [r for r in rows if r["key"] >= 0]
            got = sum(r["result"] or 0 for r in item_rows)
            m["items_ok"] = m.get("items_ok", 0) + int(got == sum(v * 2 + 1 for v in values))
            m["batches"] = m.get("batches", 0) + 1
            m["messages"] = expected + (mode == "chord")  # + the task that started the chord
            elapsed = max((r["done_at"] for r in rows if r["done_at"]), default=t0 + SETTLE_S) - t0
            m.setdefault("_rates", []).append(n / elapsed)
            if config.results:  # what this batch left in the result backend
                m["result_keys"] = _result_keys(rig) - keys_before
            return elapsed / n

        @ctx.on_close
        def close() -> None:
            rates = ctx.metrics.pop("_rates", [])
            if rates:
                ctx.metrics["items_per_s"] = round(statistics.median(rates), 1)
        if ctx.counting:
            return lambda: (unit(), ctx.metrics.get("items_ok"))[1]
        return unit
    return make


def _result_keys(rig: TaskRig) -> int:
    import redis

    from harness.measure.celeryrig import KEY_PREFIX

    client = redis.Redis.from_url(rig.redis_url)
    try:
        return sum(1 for _ in client.scan_iter(f"{KEY_PREFIX}celery-task-meta-*", count=1000))
    finally:
        client.close()


# -- retries ----------------------------------------------------------------------------------------------
def _retry_variant(mode: str):
    config = WorkerConfig("retries", "threads", 8)

    def make(ctx: Context):
        import json
        import urllib.request

        rig: TaskRig = ctx.shared
        p = ctx.params
        worker, app = rig.worker(config), rig.app(config)
        base = rig.env["LABS_UPSTREAM_URL"].rstrip("/")

        def stats(path: str) -> dict:
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                return json.loads(resp.read())

        def unit() -> float:
            tag = _batch(f"retry-{mode}")
            stats("/reset")
            t0 = time.time()
            for key in range(p["flaky_tasks"]):
                send(app, worker.queue, "jobs.fetch", tag, key, p["fail_first"], mode, p["backoff_base_ms"],
                     p["max_retries"])
            rows = settled(tag, p["flaky_tasks"], SETTLE_S)
            check_worker(worker)
            seen = stats("/stats")
            m = ctx.metrics
            _account(rows, p["flaky_tasks"], m)
            m["succeeded"] = m.get("succeeded", 0) + sum(1 for r in rows if r["status"] == "done")
            m["upstream_requests"] = m.get("upstream_requests", 0) + seen["requests"]
            m["upstream_peak_rps"] = max(m.get("upstream_peak_rps", 0), seen["peak_rps"])
            m["retry_peak_rps"] = max(m.get("retry_peak_rps", 0), seen["retry_peak_rps"])
            m["batches"] = m.get("batches", 0) + 1
            elapsed = max((r["done_at"] for r in rows if r["done_at"]), default=t0 + SETTLE_S) - t0
            m["drain_s"] = round(elapsed, 3)
            return elapsed

        if ctx.counting:
            return lambda: (unit(), ctx.metrics.get("succeeded"))[1]
        return unit
    return make


# -- cases -------------------------------------------------------------------------------------------------
def _accounted(variant: str) -> Check:
    """Every enqueued task is in the ledger as done (or failed): enqueued = done + failed, none lost."""
    def fn(runs):
        m = runs[variant].metrics
        enq, done, failed = m.get("enqueued"), m.get("done"), m.get("failed", 0)
        if enq is None:
            return False, "nothing was enqueued"
        return enq == done + failed and not m.get("lost"), (
            f"{enq} enqueued = {done} done + {failed} failed + {m.get('lost', 0)} lost (from the ledger)")
    return Check("every task accounted for", variant, fn)


def _all_kills_mid_task(variant: str) -> Check:
    """Every kill hit its task inside the window: after the credit, before the end."""
    def fn(runs):
        m = runs[variant].metrics
        kills, hit = m.get("kills", 0), m.get("killed_mid_task", 0)
        return kills > 0 and hit == kills, f"{hit} of {kills} kill(s) hit a task after its credit, before it finished"
    return Check("every kill mid-task", variant, fn)


def _every_batch(variant: str, metric: str, what: str, per: int = 1) -> Check:
    """`metric` is `per` for every batch the variant ran (counted, not assumed from the rounds)."""
    def fn(runs):
        m = runs[variant].metrics
        batches, value = m.get("batches", 0), m.get(metric)
        return batches > 0 and value == per * batches, (
            f"{metric} = {value} over {batches} batch(es), expected {per} each ({what})")
    return Check(f"{metric} in every batch", variant, fn)


def cases(params) -> list[Case]:
    out = []
    pools = [n for n in params["pools"]]
    for kind in params["kinds"]:
        peers = tuple(POOLS[n] for n in pools)
        variants = tuple(Variant(n, _work_variant(POOLS[n], kind, peers=peers), POOLS[n].describe()) for n in pools)
        checks = [*(same_result_as(n, pools[0]) for n in pools[1:]), *(_accounted(n) for n in pools)]
        out.append(Case(kind, {"kind": kind, "tasks": params["cpu_tasks" if kind == "cpu" else "tasks"],
                               "cpu_size": params["cpu_size"], "orm_size": params["orm_size"]},
                        pools[0], variants, tuple(checks), timing=SelfTimed(rounds=params["rounds"]),
                        title=f"{kind}-bound tasks on each worker pool (enqueue → done)", time_label="s/task",
                        columns=("tasks_per_s", "p50_ms", "p95_ms", "p99_ms", "worker_cpu", "worker_uss_mib",
                                 "lost")))
    if params["payloads"]:
        variants = []
        for broker, cfg in BROKERS.items():
            for label, size in (("small", params["payloads"][0]), ("large", params["payloads"][1])):
                variants.append(Variant(f"{broker}_{label}", _work_variant(cfg, "noop", size),
                                        f"{cfg.describe()} · {size} B payload",
                                        requires=frozenset({"rabbitmq"}) if broker == "rabbitmq" else frozenset()))
        out.append(Case("brokers", {"tasks": params["tasks"], "payloads": tuple(params["payloads"])}, "valkey_small",
                        tuple(variants), tuple(_accounted(v.name) for v in variants),
                        timing=SelfTimed(rounds=params["rounds"]), time_label="s/task",
                        title="the same no-op tasks through Valkey and RabbitMQ, small and large payloads",
                        columns=("tasks_per_s", "p50_ms", "p95_ms", "p99_ms", "lost")))
    prefetch = tuple(Variant(n, _prefetch_variant(n), ", ".join(filter(None, (c.describe() + " × 2 workers", o))))
                     for n, (c, _t, o) in PREFETCH.items())
    out.append(Case("prefetch", {k: params[k] for k in ("mix_tasks", "long_every", "long_ms", "short_ms")},
                    "prefetch_4", prefetch,
                    (*(_accounted(v.name) for v in prefetch),
                     metric_check("prefetch_4", "stuck", lambda v: v > 0,
                                  "> 0 (short tasks reserved behind the long one wait for it)"),
                     metric_check("prefetch_1_acks_late", "stuck", lambda v: v == 0,
                                  "== 0 (a worker holds only the task it runs)")),
                    timing=SelfTimed(rounds=params["rounds"]), time_label="makespan",
                    title=f"a long task ({params['long_ms']} ms) every {params['long_every']}, the rest "
                          f"{params['short_ms']} ms, over two workers of one pool process each",
                    columns=("stuck", "short_p50_ms", "short_p95_ms", "makespan_s", "lost")))
    crash = tuple(Variant(n, _crash_variant(n), "; ".join(filter(None, (
        c.describe() + (f", visibility timeout {c.visibility_s:g} s" if c.visibility_s else ""), TASK_OPTIONS[task],
        f"kill the {'pool process' if t == 'child' else 'whole worker'}" + (", idempotent task" if i else "")))))
                  for n, (c, task, i, t) in CRASH.items())
    rounds = params["crash_rounds"]
    out.append(Case(
        "crash", {k: params[k] for k in ("crash_tasks", "hold_ms")}, "early_ack", crash,
        (*(_all_kills_mid_task(n) for n in CRASH),
         metric_check("early_ack", "lost", lambda v: v >= 1, ">= 1 (acked on receipt: nobody retries it)"),
         metric_check("acks_late", "lost", lambda v: v >= 1,
                      ">= 1 (a lost worker process still acks it, without reject_on_worker_lost)"),
         metric_check("acks_late_reject", "lost", lambda v: v == 0, "== 0 (requeued and run again)"),
         metric_check("acks_late_reject", "credited_twice", lambda v: v >= 1,
                      ">= 1 (the rerun credited again: not idempotent)"),
         metric_check("idempotent", "lost", lambda v: v == 0, "== 0"),
         metric_check("idempotent", "balance_error", lambda v: v == 0, "== 0 (the key made the rerun harmless)"),
         metric_check("worker_killed", "lost", lambda v: v == 0, "== 0 (redelivered after the visibility timeout)")),
        timing=SelfTimed(rounds=rounds), time_label="drain s",
        title=f"{params['crash_tasks']} tasks, each credits 100 then works {params['hold_ms']} ms; the first one's "
              "process is SIGKILLed in that window",
        columns=("kills", "killed_mid_task", "done", "lost", "reruns", "credited_twice", "balance_error",
                 "redelivered_after_s")))
    tx = (Variant("inside_atomic", _tx_variant("inside_atomic"), "Celery: send_task() inside transaction.atomic()"),
          Variant("on_commit", _tx_variant("on_commit"), "Celery: transaction.on_commit(lambda: send_task())"),
          Variant("django_db", _tx_variant("django_db"),
                  f"task.enqueue() inside atomic(): {replace(TX_DB_WORKER, poll_s=params['db_poll_s']).describe()}"))
    out.append(Case("transactions", {k: params[k] for k in ("orders", "commit_after_ms", "db_poll_s")},
                    "inside_atomic", tx,
                    (metric_check("inside_atomic", "missing_rows", lambda v: v > 0,
                                  "> 0 (the task ran before COMMIT and found no row)"),
                     metric_check("on_commit", "missing_rows", lambda v: v == 0, "== 0"),
                     metric_check("django_db", "missing_rows", lambda v: v == 0,
                                  "== 0 (the task's row commits with the order: no worker sees it before)"),
                     *(_accounted(v.name) for v in tx)),
                    timing=SelfTimed(rounds=params["rounds"]), time_label="s/order",
                    title=f"an order written, its task enqueued, COMMIT {params['commit_after_ms']} ms later",
                    columns=("orders", "missing_rows", "p50_ms", "p95_ms", "lost")))
    gran = tuple(Variant(m, _granularity_variant(m), d) for m, d in (
        ("per_item", "one task per item, results ignored"),
        ("per_item_results", "one task per item, results in Redis"),
        ("chunks", f"{params['chunk']} items per task"),
        ("chord", "a chord (started by a task): a task per item, then a callback over their results")))
    out.append(Case("granularity", {k: params[k] for k in ("items", "chunk")}, "per_item", gran,
                    (*(_every_batch(v.name, "items_ok", "all items processed, their sum right") for v in gran),
                     *(_accounted(v.name) for v in gran)),
                    timing=SelfTimed(rounds=params["rounds"]), time_label="s/item",
                    title=f"{params['items']} items: one task each, chunks of {params['chunk']}, or a chord",
                    columns=("items_per_s", "messages", "result_keys", "lost")))
    retry = (Variant("immediate", _retry_variant("immediate"), "retry at once"),
             Variant("backoff", _retry_variant("backoff"),
                     f"full-jitter exponential backoff from {params['backoff_base_ms']} ms"))
    out.append(Case("retries", {k: params[k] for k in ("flaky_tasks", "fail_first", "backoff_base_ms", "max_retries")},
                    "immediate", retry,
                    (*(_accounted(v.name) for v in retry),
                     *(_every_batch(v.name, "upstream_requests",
                                    f"{params['fail_first']} failures + 1 success per task",
                                    per=params["flaky_tasks"] * (params["fail_first"] + 1)) for v in retry)),
                    timing=SelfTimed(rounds=params["crash_rounds"]), time_label="drain s",
                    title=f"{params['flaky_tasks']} tasks against an upstream that fails each one "
                          f"{params['fail_first']} times",
                    columns=("succeeded", "upstream_requests", "upstream_peak_rps", "retry_peak_rps", "drain_s",
                             "lost")))
    return out


def setup(ctx: Context) -> TaskRig:
    """The upstream stand-in (io and retries), a clean ledger, and the run's TaskRig."""
    from django.db import connection

    from harness.measure import upstream
    from labs.bookstore.seed import seed_techempower

    seed_techempower(ctx.seed)
    with connection.cursor() as cur:
        from django_tasks_db.models import DBTaskResult

        cur.execute(f"TRUNCATE jobs_taskrun, jobs_account, jobs_appliedkey, jobs_order, {DBTaskResult._meta.db_table}")
    url, stop = upstream.start(ctx.artifacts_dir(), ctx.params["upstream_ms"])
    ctx.on_close(stop)
    rig = TaskRig(ctx.artifacts_dir(), os.environ["REDIS_URL"],
                  {"LABS_UPSTREAM_URL": url, "LABS_CONN_MAX_AGE": "60"})
    ctx.on_close(rig.close)
    if "rabbitmq" in ctx.components and ctx.planned and ctx.planned & {"rabbitmq_small", "rabbitmq_large"}:
        rig.launch_rabbitmq()  # boots beside the first case's workers (prepare waits for both)
    return rig


def summarize(result) -> list[str]:
    from scenarios.tasks_lesson import lines

    return lines(result)


SCENARIO = Scenario(
    name="tasks",
    title="Background work with Celery: pools, brokers, prefetch, crashes, transactions, retries",
    requires=frozenset({"postgres", "redis"}),
    optional=frozenset({"rabbitmq"}),
    profiles={
        "quick": {"pools": ("solo", "prefork_2", "threads_8", "gevent_32"), "kinds": ("io", "cpu"), "tasks": 40,
                  "cpu_tasks": 16, "cpu_size": 400_000, "orm_size": 50, "upstream_ms": 20, "rounds": 3,
                  "payloads": (100, 100_000), "mix_tasks": 10, "long_every": 10, "long_ms": 1200, "short_ms": 2,
                  "crash_tasks": 2, "hold_ms": 300, "crash_rounds": 2, "orders": 20, "commit_after_ms": 20, "db_poll_s": 1.0,
                  "items": 120, "chunk": 40, "flaky_tasks": 20, "fail_first": 3, "backoff_base_ms": 200,
                  "max_retries": 10},
        "full": {"pools": ("solo", "prefork_2", "threads_8", "gevent_32"), "kinds": ("io", "cpu", "orm"),
                 "tasks": 600, "cpu_tasks": 120, "cpu_size": 400_000, "orm_size": 50, "upstream_ms": 20, "rounds": 5,
                 "payloads": (100, 500_000), "mix_tasks": 20, "long_every": 10, "long_ms": 1200, "short_ms": 2,
                 "crash_tasks": 4, "hold_ms": 500, "crash_rounds": 3, "orders": 50, "commit_after_ms": 20, "db_poll_s": 1.0,
                 "items": 2000, "chunk": 100, "flaky_tasks": 60, "fail_first": 3, "backoff_base_ms": 200,
                 "max_retries": 10},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(
        Metric("tasks_per_s", "tasks/s", better="higher", kind="statistical", show=True),
        Metric("p50_ms", "p50", "ms", kind="statistical", description="enqueue → done"),
        Metric("p95_ms", "p95", "ms", kind="statistical", description="enqueue → done"),
        Metric("p99_ms", "p99", "ms", kind="statistical", description="enqueue → done"),
        Metric("worker_cpu", "worker CPU", "cores", description="worker CPU per second of a batch"),
        Metric("worker_uss_mib", "worker USS", "MiB", description="unique memory of the worker and its pool"),
        Metric("boot_s", "boot", "s"),
        Metric("enqueued", "enqueued", kind="exact", better=None),
        Metric("done", "done", kind="exact", better="higher"),
        Metric("failed", "failed", kind="exact"),
        Metric("lost", "lost", kind="exact", description="enqueued but never done (from the ledger)"),
        Metric("duplicates", "duplicates", kind="exact", description="tasks whose effect was applied twice"),
        Metric("stuck", "stuck", description="short tasks that waited over 3/4 of the long task's time"),
        Metric("batches", "batches", better=None),
        Metric("retry_peak_rps", "retry peak", "req/s", description="retries in the busiest 100 ms, per second"),
        Metric("short_p50_ms", "short p50", "ms", kind="statistical"),
        Metric("short_p95_ms", "short p95", "ms", kind="statistical",
               description="enqueue → done of the short tasks: the wait behind long ones"),
        Metric("makespan_s", "makespan", "s", kind="statistical"),
        Metric("kills", "kills"),
        Metric("killed_mid_task", "killed mid-task"),
        Metric("gone_from_broker", "gone from broker",
               description="lost tasks whose message the broker no longer held (queued or unacknowledged)"),
        Metric("reruns", "reruns", better=None, description="tasks that started more than once"),
        Metric("credited_twice", "credited twice", description="credits applied again by a rerun"),
        Metric("balance_error", "balance error", better=None, description="account balance − 100 × tasks"),
        Metric("visibility_s", "visibility timeout", "s", better=None,
               description="Redis: how long a delivered, unacknowledged message waits before it is restored"),
        Metric("redelivered_after_s", "redelivered after", "s", better=None,
               description="whole worker killed: when the new worker started the unacknowledged task"),
        Metric("orders", "orders"),
        Metric("missing_rows", "missing rows", kind="exact",
               description="tasks that ran before their order was committed"),
        Metric("items_ok", "rounds all items ok", better="higher"),
        Metric("items_per_s", "items/s", better="higher", kind="statistical"),
        Metric("messages", "messages", better=None, description="tasks sent per round"),
        Metric("result_keys", "result keys", description="results a batch stored in Redis (nobody reads them)"),
        Metric("succeeded", "succeeded", better="higher"),
        Metric("upstream_requests", "upstream reqs", description="requests the flaky upstream received"),
        Metric("upstream_peak_rps", "upstream peak", "req/s", description="its busiest 100 ms, per second"),
        Metric("drain_s", "drain", "s", kind="statistical", description="enqueue → last task done"),
    ),
    processes={"quick": 1, "full": 1},
)
