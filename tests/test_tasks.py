"""The tasks scenario on real Celery workers (child processes on the test stack) at tiny sizes: the
deterministic facts its ledger in PostgreSQL gives — tasks lost to a SIGKILL, reruns and double
credits, an idempotency key that makes a rerun harmless, a task that runs before its order is
committed, every enqueued task accounted for — and that no worker outlives its run."""
from __future__ import annotations

import os
import signal
import time
import uuid
from urllib.parse import urlsplit

import psutil
import pytest

from harness.measure.runner import RunOptions, run_scenario
from harness.project import registry
from harness.stack import rabbitmq
from tests.helpers import Labs, need

pytestmark = pytest.mark.stack

SMALL = {"tasks": "12", "cpu_tasks": "6", "rounds": "2", "crash_tasks": "2", "hold_ms": "300", "orders": "8",
         "commit_after_ms": "30", "items": "40", "chunk": "10", "flaky_tasks": "4", "fail_first": "2",
         "mix_tasks": "6", "long_every": "6", "long_ms": "1500", "crash_rounds": "2"}


def _run(stack, budget, variants, **params):
    res = run_scenario(registry.get("tasks"), RunOptions(("tasks",), "quick", tuple(variants),
                                                         params={**SMALL, **params}, budget=budget), stack)
    assert res.ok, [(c.variant, c.name, c.detail) for c in res.checks if not c.ok]
    return {c.name: c for c in res.cases}


def _celery_workers(var: str, value: str) -> list[psutil.Process]:
    """The lab's Celery workers whose environment variable `var` contains `value` — this test's
    own, not those of another lab run on the machine (the environment is inherited)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "celery" in cmd and "labs.celery_app" in cmd:
            try:
                if value in p.environ().get(var, ""):
                    out.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    return out


def _stack_workers(stack) -> list[psutil.Process]:
    """Workers on this stack's Valkey (their broker URL names its port)."""
    return _celery_workers("LABS_CELERY_BROKER", urlsplit(stack.urls["redis"]).netloc)


def test_crash_loses_repeats_or_is_harmless_as_configured(stack, tiny_budget):
    cases = _run(stack, tiny_budget, ["early_ack", "acks_late", "acks_late_reject", "idempotent", "worker_killed",
                                      "inside_atomic", "on_commit", "django_db", "solo", "per_item", "chunks", "chord",
                                      "immediate", "backoff", "prefetch_4", "prefetch_1_acks_late"],
                 kinds="io", pools="solo", payloads="100,1000", backoff_base_ms="20")
    crash = cases["crash"].variants
    for name, v in crash.items():
        m = v.metrics
        assert m["kills"] >= 2 and m["killed_mid_task"] == m["kills"], (name, m)
        assert m["enqueued"] == 2 * m["kills"], (name, m)
    # acked before running: the killed task is gone; acks_late alone too (the pool acks a lost process's task)
    assert crash["early_ack"].metrics["lost"] == crash["early_ack"].metrics["kills"]
    assert crash["acks_late"].metrics["lost"] == crash["acks_late"].metrics["kills"]
    # reject_on_worker_lost: nothing lost, each killed task ran again and credited twice
    rej = crash["acks_late_reject"].metrics
    assert rej["lost"] == 0 and rej["credited_twice"] == rej["kills"] and rej["balance_error"] == 100 * rej["kills"]
    idem = crash["idempotent"].metrics
    assert idem["lost"] == 0 and idem["reruns"] == idem["kills"] and idem["credited_twice"] == 0
    assert idem["balance_error"] == 0
    whole = crash["worker_killed"].metrics
    # redelivered once the visibility timeout passed, not at once
    assert whole["lost"] == 0 and whole["redelivered_after_s"] >= whole["visibility_s"] > 0

    tx = cases["transactions"].variants
    assert tx["inside_atomic"].metrics["missing_rows"] > 0 and tx["on_commit"].metrics["missing_rows"] == 0
    assert tx["on_commit"].metrics["orders"] == tx["on_commit"].metrics["done"]
    # Django's tasks framework, database backend: the task row commits with the order
    db = tx["django_db"].metrics
    assert db["missing_rows"] == 0 and db["done"] == db["orders"] > 0 and db["lost"] == 0, db

    io = cases["io"].variants["solo"].metrics
    assert io["lost"] == 0 and io["done"] == io["enqueued"] and io["enqueued"] % 12 == 0

    gran = cases["granularity"].variants
    assert gran["chunks"].metrics["messages"] == 4 and gran["per_item"].metrics["messages"] == 40
    assert gran["chord"].metrics["messages"] == 42 and gran["chord"].metrics["result_keys"] >= 40  # its results (the last may still be on its way)
    assert all(v.metrics["items_ok"] == v.metrics["batches"] for v in gran.values())

    retry = cases["retries"].variants
    for v in retry.values():
        assert v.metrics["upstream_requests"] == 4 * 3 * v.metrics["batches"] and v.metrics["failed"] == 0

    pre = cases["prefetch"].variants
    assert pre["prefetch_4"].metrics["stuck"] > 0 and pre["prefetch_1_acks_late"].metrics["stuck"] == 0
    assert not _stack_workers(stack), "the run's Celery workers outlived it"


def test_rabbitmq_broker_started_by_the_lab(stack, tiny_budget):
    need("rabbitmq-server", rabbitmq.binary() is not None, rabbitmq.INSTALL)
    cases = _run(stack, tiny_budget, ["rabbitmq_small", "rabbitmq_large"], payloads="100,50000")
    assert set(cases) == {"brokers"}  # --variants runs only the cases that have them
    brokers = cases["brokers"].variants
    for name in ("valkey_small", "rabbitmq_small", "rabbitmq_large"):
        m = brokers[name].metrics
        assert not brokers[name].skipped and m["lost"] == 0 and m["done"] == m["enqueued"] > 0, (name, m)
    mine = f"rabbitmq-{os.getpid()}"  # the broker's own folder (another lab run's has its pid)
    beams = [p for p in psutil.process_iter(["name", "cmdline"]) if p.info["name"] == "beam.smp"
             and any(mine in part for part in p.info["cmdline"] or [])]
    assert not beams, "the lab's RabbitMQ outlived its run"


def test_interrupt_stops_every_worker(tmp_path):
    """Ctrl-C while Celery workers run: labs exits, saves a partial result, and no worker is left."""
    mark = uuid.uuid4().hex  # inherited by the workers this run starts
    with Labs("run", "tasks", "--no-chart", "--variants", "threads_8,early_ack", "--param", "crash_tasks=3",
              "--param", "tasks=6", "--param", "kinds=io", "--param", "pools=solo,threads_8", cwd=tmp_path,
              env={**os.environ, "CI": "true", "PERFLAB_TEST_MARK": mark}) as labs:
        labs.wait_for("io measuring", timeout_s=240)
        deadline = time.monotonic() + 60
        while not _celery_workers("PERFLAB_TEST_MARK", mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _celery_workers("PERFLAB_TEST_MARK", mark)
        assert workers, "no Celery worker was running"
        labs.send_signal(signal.SIGINT)
        _out, err = labs.communicate(timeout=120)
    assert labs.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, [p.pid for p in alive]
    assert not _celery_workers("PERFLAB_TEST_MARK", mark)
    saved = list((tmp_path / "results").glob("*-tasks-*.json"))
    assert saved and '"complete": false' in saved[0].read_text()
