"""The tasks scenario's Celery tasks. Each one accounts for itself in the ledger (jobs_taskrun):
the harness counts what ran, how often, and what was applied twice from PostgreSQL.

Every task takes (batch, key, sent_at) first: the batch it belongs to, its key within it, and the
producer's clock when it was enqueued (enqueue→done latency = done_at − sent_at, one machine).
"""
from __future__ import annotations

import os
import random
import time
import urllib.error
import urllib.request

from celery import shared_task
from django.db import IntegrityError, connection, transaction

RECORD = """
INSERT INTO jobs_taskrun (batch, key, attempts, applied, status, pid, result, sent_at, started_at, done_at)
VALUES (%s, %s, 1, 1, %s, %s, %s, %s, %s, %s)
ON CONFLICT (batch, key) DO UPDATE SET attempts = jobs_taskrun.attempts + 1, applied = jobs_taskrun.applied + 1,
    status = EXCLUDED.status, pid = EXCLUDED.pid, result = EXCLUDED.result, done_at = EXCLUDED.done_at
"""
BEGIN = """
INSERT INTO jobs_taskrun (batch, key, attempts, applied, status, pid, sent_at, started_at)
VALUES (%s, %s, 1, 0, 'running', %s, %s, %s)
ON CONFLICT (batch, key) DO UPDATE SET attempts = jobs_taskrun.attempts + 1, status = 'running',
    pid = EXCLUDED.pid, started_at = EXCLUDED.started_at
"""


def record(batch: str, key: int, sent_at: float, started: float, result: int, status: str = "done") -> None:
    """One statement per task: the row (or one more attempt and application of it)."""
    with connection.cursor() as cur:
        cur.execute(RECORD, [batch, key, status, os.getpid(), result, sent_at, started, time.time()])


def upstream(path: str) -> tuple[int, bytes]:
    url = os.environ["LABS_UPSTREAM_URL"].rstrip("/") + path
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


# -- work of a kind: the pools and brokers cases ---------------------------------------------------
def work(batch: str, key: int, sent_at: float, kind: str, size: int = 0, payload: str = "") -> int:
    started = time.time()
    if kind == "cpu":  # pure Python: holds the GIL the whole time
        result = sum(i * i for i in range(size)) % 1_000_003
    elif kind == "io":  # waits on a real upstream (a socket): releases the GIL, yields under gevent
        status, body = upstream(f"/io?key={key}")
        result = len(body) if status == 200 else -status
    elif kind == "orm":
        from django.db.models import Sum

        from labs.bookstore.models import Book

        result = Book.objects.filter(pk__lte=size).aggregate(total=Sum("price_cents"))["total"] or 0
    elif kind == "sleep":
        time.sleep(size / 1000)
        result = key
    else:  # noop: the broker round trip and the ledger write only
        result = key + len(payload)
    record(batch, key, sent_at, started, result)
    return result


work_task = shared_task(name="jobs.work")(work)
work_late = shared_task(name="jobs.work_late", acks_late=True)(work)
"""The same work, acknowledged after it ran (the prefetch case: an unacknowledged message holds its
place in the worker's prefetch window until its task ends)."""


# -- losing and repeating work: the crash case -----------------------------------------------------
def credit(batch: str, key: int, sent_at: float, account: str, amount: int, hold_ms: int, idempotent: bool) -> int:
    """Credit an account, then keep working `hold_ms` (the window a crash hits), then finish.

    Not idempotent: run twice, it credits twice. Idempotent: the credit and its key commit in one
    transaction, and a second run finds the key and applies nothing."""
    started = time.time()
    with connection.cursor() as cur:
        cur.execute(BEGIN, [batch, key, os.getpid(), sent_at, started])
    applied = 0
    try:
        with transaction.atomic():
            if idempotent:
                from labs.jobs.models import AppliedKey

                AppliedKey.objects.create(key=f"{batch}:{key}")
            with connection.cursor() as cur:
                cur.execute("UPDATE jobs_account SET balance = balance + %s WHERE name = %s", [amount, account])
                cur.execute("UPDATE jobs_taskrun SET applied = applied + 1 WHERE batch = %s AND key = %s", [batch, key])
            applied = 1
    except IntegrityError:
        pass  # this key was applied by an earlier run: nothing to do again
    time.sleep(hold_ms / 1000)
    with connection.cursor() as cur:
        cur.execute("UPDATE jobs_taskrun SET status = 'done', done_at = %s WHERE batch = %s AND key = %s",
                    [time.time(), batch, key])
    return applied


credit_task = shared_task(name="jobs.credit")(credit)
"""As the worker is configured (Celery's default: acknowledged when a pool process accepts it)."""
credit_late = shared_task(name="jobs.credit_late", acks_late=True)(credit)
"""Acknowledged after it ran — or when its process dies: the pool acks a lost process's task as failed."""
credit_reject = shared_task(name="jobs.credit_reject", acks_late=True, reject_on_worker_lost=True)(credit)
"""Acknowledged after it ran; a task whose process died goes back to the queue and runs again."""


# -- transactions: enqueued inside atomic() or on_commit --------------------------------------------
@shared_task(name="jobs.read_order")
def read_order(batch: str, key: int, sent_at: float, order_id: int) -> int:
    """Read the order the producer wrote just before enqueuing: -1 when it is not there (yet)."""
    from labs.jobs.models import Order

    started = time.time()
    total = Order.objects.filter(pk=order_id).values_list("total_cents", flat=True).first()
    result = -1 if total is None else int(total)
    record(batch, key, sent_at, started, result)
    return result


# -- granularity and results ------------------------------------------------------------------------
@shared_task(name="jobs.items")
def items(batch: str, key: int, sent_at: float, values: list[int]) -> int:
    """Process a chunk of items (one per task, or many): the result is their sum."""
    started = time.time()
    result = sum(v * 2 + 1 for v in values)
    record(batch, key, sent_at, started, result)
    return result


@shared_task(name="jobs.total")
def total(results: list[int], batch: str, sent_at: float) -> int:
    """A chord's callback: the sum of its header's results (which needs a result backend)."""
    started = time.time()
    result = sum(results)
    record(batch, -1, sent_at, started, result)
    return result


@shared_task(name="jobs.fan_out")
def fan_out(batch: str, key: int, sent_at: float, parts: list[list[int]], queue: str) -> str:
    """Start a chord from the worker: one `items` task per part, then `total` over their results.
    (Not in the ledger: the items and the total are.)"""
    from celery import chord

    header = [items.s(batch, k, sent_at, part).set(queue=queue) for k, part in enumerate(parts)]
    return chord(header)(total.s(batch, sent_at).set(queue=queue)).id


# -- retries against a flaky upstream ---------------------------------------------------------------
@shared_task(name="jobs.fetch", bind=True, max_retries=None)
def fetch(self, batch: str, key: int, sent_at: float, fail: int, mode: str, base_ms: float, max_retries: int) -> int:
    """GET an upstream that answers 503 to the first `fail` requests for this task. Retries at
    once (`immediate`) or after a full-jitter exponential backoff (`backoff`: uniform in
    [0, base·2^n]); gives up after `max_retries` (recorded as failed)."""
    started = time.time()
    status, _body = upstream(f"/flaky?key={batch}:{key}&fail={fail}")
    if status == 200:
        record(batch, key, sent_at, started, self.request.retries)
        return self.request.retries
    if self.request.retries >= max_retries:
        record(batch, key, sent_at, started, self.request.retries, status="failed")
        return -1
    countdown = 0.0 if mode == "immediate" else random.uniform(0, base_ms * 2 ** self.request.retries) / 1000
    raise self.retry(countdown=countdown)


# -- workshop exercise 7: the participant's credit() under a crash ----------------------------------
@shared_task(name="jobs.exercise_credit")
def exercise_credit(batch: str, key: int, sent_at: float, account: str, amount: int, hold_ms: int) -> int:
    """Run the participant's `credit()` (module LABS_EXERCISE_MODULE), then keep working `hold_ms`
    (the window the check's SIGKILL hits), then finish."""
    import importlib

    module = importlib.import_module(os.environ["LABS_EXERCISE_MODULE"])
    started = time.time()
    with connection.cursor() as cur:
        cur.execute(BEGIN, [batch, key, os.getpid(), sent_at, started])
    module.credit(account, amount, f"{batch}:{key}")
    with connection.cursor() as cur:
        cur.execute("UPDATE jobs_taskrun SET applied = applied + 1 WHERE batch = %s AND key = %s", [batch, key])
    time.sleep(hold_ms / 1000)
    with connection.cursor() as cur:
        cur.execute("UPDATE jobs_taskrun SET status = 'done', done_at = %s WHERE batch = %s AND key = %s",
                    [time.time(), batch, key])
    return amount
