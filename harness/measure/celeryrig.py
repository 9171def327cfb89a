"""Real Celery workers for the tasks scenario: started as child processes on the lab's stack,
one per configuration and each on its own queue, kept up across interleaved rounds, stopped
however the run ends (parent-death signal, process-group stop, SIGKILL of what lingers). A
configuration with pool "db_worker" is Django's own tasks framework instead: django-tasks-db's
`db_worker` command polling its table, no broker.

`TaskRig` holds a run's workers, the RabbitMQ it may start, and the producer apps; `batch` sends
tasks and waits for the ledger (labs.jobs) to account for every one of them.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.errors import StackError
from harness.stack import procs

KEY_PREFIX = "labs."
"""Of every Redis key the lab's Celery writes (broker queues, bindings, unacked, results): the
workers' app (labs.celery_app) sets it as kombu's and Celery's global_keyprefix, so on a shared
Redis the rig finds and removes exactly its own keys."""

"""Valkey databases of the broker and the result backend (the caching scenario uses 0)."""


@dataclass(frozen=True)
class WorkerConfig:
    name: str
    pool: str = "prefork"
    """prefork, threads, gevent or solo."""
    concurrency: int = 2
    prefetch: int = 4
    acks_late: bool = False
    reject_on_worker_lost: bool = False
    broker: str = "redis"
    """redis (the stack's Valkey) or rabbitmq (started by the lab)."""
    results: bool = False
    """A Redis result backend (else results are not stored)."""
    visibility_s: float | None = None
    poll_s: float = 1.0
    """pool "db_worker" (Django's tasks framework, database backend): seconds between polls of an
    empty queue (django-tasks-db's default: 1)."""
    queue: str = ""
    """The queue it consumes (default: its own, named after it; replicas share their original's)."""

    def describe(self) -> str:
        if self.pool == "db_worker":
            return f"django.tasks DatabaseBackend, one db_worker polling every {self.poll_s:g} s"
        parts = [f"{self.pool} ×{self.concurrency}"] if self.pool != "solo" else ["solo"]
        if self.prefetch != 4:
            parts.append(f"prefetch {self.prefetch}")
        if self.acks_late:
            parts.append("acks_late" + (" + reject_on_worker_lost" if self.reject_on_worker_lost else ""))
        if self.broker != "redis":
            parts.append(self.broker)
        if self.results:
            parts.append("redis results")
        return ", ".join(parts)


def queue_of(config: WorkerConfig) -> str:
    """The queue a worker of this configuration consumes."""
    return f"labs.{config.queue or config.name}"


@dataclass
class Worker:
    config: WorkerConfig
    log_path: Path
    env: dict[str, str]
    proc: Any = None
    boot_s: float = 0.0
    _log_start: int = 0
    _t0: float = 0.0

    @property
    def queue(self) -> str:
        return queue_of(self.config)

    def start(self, timeout_s: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Start the process (from the thread that lives as long as the run: the child's
        parent-death signal fires when the thread that started it ends)."""
        c = self.config
        if c.pool == "db_worker":  # Django's tasks framework: one process, one task at a time
            self._launch([sys.executable, "-m", "django", "db_worker", "--no-reload", "--no-startup-delay",
                          "--interval", f"{c.poll_s:g}", "--worker-id", c.name])
            return
        argv = [sys.executable, "-m", "celery", "-A", "labs.celery_app", "worker", "-P", c.pool,
                "-c", str(c.concurrency), "-Q", self.queue, "-n", f"{c.name}@perflab", "--purge",
                "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO",
                "--prefetch-multiplier", str(c.prefetch)]
        self._launch(argv)

    def _launch(self, argv: list[str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._t0 = time.perf_counter()
        self.proc = procs.start(argv, self.log_path, env=self.env, death_signal=signal.SIGTERM)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        what, sign = (("db_worker", b"Starting worker") if self.config.pool == "db_worker"
                      else ("celery worker", b" ready."))

        def ready() -> bool:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                return sign in fh.read()
        procs.wait_ready(f"{what} {self.config.name}", ready, self.proc, self.log_path, timeout_s=timeout_s)
        self.boot_s = time.perf_counter() - self._t0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def family(self) -> list[psutil.Process]:
        try:
            main = psutil.Process(self.proc.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_s(self) -> float:
        return sum(procs.cpu_seconds(self.family()).values())

    def uss_mib(self) -> float:
        total = 0
        for p in self.family():
            try:
                total += p.memory_full_info().uss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return round(total / 2**20, 1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            procs.stop_child(self.proc, sig)


@dataclass
class TaskRig:
    """A run's Celery workers (one per configuration), brokers and producer apps."""

    artifacts: Path
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    rabbit: Any = None
    apps: dict[tuple, Any] = field(default_factory=dict)

    def broker_url(self, kind: str) -> str:
        if kind == "redis":
            # the database REDIS_URL names (an external Redis: the one you gave the lab), never another
            return self.redis_url
        if kind == "rabbitmq":
            self.launch_rabbitmq()
            if not self.rabbit.ready:
                self.rabbit.wait_ready()
            return self.rabbit.url
        raise ValueError(f"unknown broker {kind!r}")

    def launch_rabbitmq(self) -> None:
        """Start the run's RabbitMQ, not waiting for it: it boots beside the next `prepare`'s
        workers, and whatever first needs its URL waits for it to be ready."""
        if self.rabbit is None:
            from harness.stack import embedded
            from harness.stack.rabbitmq import RabbitMQ

            # its files live in the runtime dir: RabbitMQ runs as the service user, who may not
            # reach the results folder (a checkout under /root); its log is copied at the end
            rabbit = RabbitMQ(embedded.runtime_dir() / f"rabbitmq-{os.getpid()}")
            self.rabbit = rabbit  # registered first: close() stops it whatever happens
            rabbit.launch()

    def prepare(self, configs) -> None:
        """The workers of one case, started together (their boots overlap: a Celery worker spends
        seconds importing), and the previous case's stopped (idle workers are noise)."""
        wanted = {c.name: c for c in configs}
        stop_workers([self.workers.pop(n) for n in list(self.workers) if n not in wanted])
        for c in wanted.values():
            self.broker_url(c.broker)  # a broker the lab starts is up before its workers
        missing = [c for n, c in wanted.items() if n not in self.workers or not self.workers[n].alive()]
        launched = [self._new_worker(c) for c in missing]
        for w in launched:  # all booting at once; each launched from this thread (see Worker.launch)
            w.launch()
            self.workers[w.config.name] = w  # registered at once: stopped by close() whatever happens
        for w in launched:
            w.wait_ready()
        if self.rabbit is not None and not self.rabbit.ready:  # booted beside them, not during a case's timing
            self.rabbit.wait_ready()

    def worker(self, config: WorkerConfig) -> Worker:
        w = self.workers.get(config.name)
        if w is None or not w.alive():
            w = self._new_worker(config)
            w.start()
            self.workers[config.name] = w
        return w

    def _new_worker(self, config: WorkerConfig) -> Worker:
        env = {"DJANGO_SETTINGS_MODULE": "labs.settings", **os.environ, **self.env,
               "LABS_CELERY_BROKER": self.broker_url(config.broker),
               "LABS_CELERY_PREFETCH": str(config.prefetch),
               "LABS_CELERY_ACKS_LATE": "1" if config.acks_late else "0",
               "LABS_CELERY_REJECT_LOST": "1" if config.reject_on_worker_lost else "0"}
        env.pop("LABS_CELERY_BACKEND", None)
        if config.results:
            env["LABS_CELERY_BACKEND"] = self.redis_url
        if config.visibility_s is not None:
            env["LABS_CELERY_VISIBILITY"] = str(config.visibility_s)
        if config.pool == "db_worker":
            env["PYTHONUNBUFFERED"] = "1"  # its "Starting worker" line, our ready sign, reaches the log at once
        return Worker(config, self.artifacts / f"celery-{config.name}.log", env)

    @contextlib.contextmanager
    def broker_reader(self, config: WorkerConfig):
        """A function counting the copies of a message (by task id) the worker's broker holds:
        queued (kombu's queue lists, with their priority sub-lists) or delivered and not yet
        acknowledged (kombu's `unacked` hash). None for a broker it cannot read (RabbitMQ)."""
        if config.broker != "redis":
            yield lambda task_id: None
            return
        import redis

        client = redis.Redis.from_url(self.broker_url("redis"))
        queue = KEY_PREFIX + queue_of(config)  # kombu writes every key under the global prefix

        def copies(task_id: str) -> int:
            needle, held = task_id.encode(), 0
            for key in client.scan_iter(match=queue + "*", count=1000):
                if client.type(key) == b"list":
                    held += sum(1 for m in client.lrange(key, 0, -1) if needle in m)
            return held + sum(1 for m in client.hvals(KEY_PREFIX + "unacked") if needle in m)
        try:
            yield copies
        finally:
            client.close()

    def app(self, config: WorkerConfig):
        """The producer side for this worker's broker. It never has a result backend: results are
        the worker's business (a chord is started by a task on the worker), so the lab process
        holds no result subscriptions."""
        key = (config.broker, config.visibility_s)
        if key not in self.apps:
            from labs.celery_app import make_app

            app = make_app(self.broker_url(config.broker))
            if config.visibility_s is not None:
                app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                                     "visibility_timeout": config.visibility_s}
            self.apps[key] = app
        return self.apps[key]

    def _forget_redis_keys(self) -> None:
        if self.redis_url:
            _forget_keys(self.redis_url)

    def close(self) -> None:
        try:
            stop_workers(list(self.workers.values()))
            for app in self.apps.values():
                app.close()
            # kombu keeps connection and producer pools in process-wide groups keyed by broker URL:
            # closed and forgotten here, so a later run on the same URL does not get a closed pool
            import kombu.pools

            kombu.pools.reset()
        finally:
            self.workers.clear()
            self.apps.clear()
            self._forget_redis_keys()
            if self.rabbit is not None:
                self.rabbit.stop()
                self.rabbit.keep_log(self.artifacts / "rabbitmq.log")
                self.rabbit = None


def _forget_keys(url: str) -> None:
    """Every key the lab's Celery wrote (all under KEY_PREFIX), deleted: a shared Redis is left as
    it was found."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=KEY_PREFIX + "*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.exceptions.RedisError:
        pass  # the server went away with the run: nothing left to clean
    finally:
        client.close()


def stop_workers(workers: list[Worker]) -> None:
    """Several workers at once, by Celery's cold shutdown (SIGQUIT: stop now), SIGKILL after 3 s.
    They are idle when a case ends, every batch settled. (A threads worker on RabbitMQ was seen
    still running 10 s after SIGTERM or SIGQUIT, one thread left.)"""
    procs.stop_children([w.proc for w in workers if w.proc is not None], signal.SIGQUIT, timeout_s=3.0)


# -- the ledger ----------------------------------------------------------------------------------------
def ledger(batch: str) -> list[dict]:
    """The ledger rows of a batch (labs.jobs TaskRun), by key."""
    from labs.jobs.models import TaskRun

    return list(TaskRun.objects.filter(batch=batch).order_by("key").values())


def settled(batch: str, expected: int, timeout_s: float, statuses=("done", "failed")) -> list[dict]:
    """Wait until `expected` rows of the batch are finished (or the timeout); the rows then."""
    from labs.jobs.models import TaskRun

    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while time.monotonic() < deadline:
        if TaskRun.objects.filter(batch=batch, status__in=statuses).count() >= expected:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)
    return ledger(batch)


def send(app, queue: str, task: str, batch: str, key: int, *args: Any, **options: Any):
    return app.send_task(task, args=[batch, key, time.time(), *args], queue=queue, **options)


def check_worker(worker: Worker) -> None:
    if not worker.alive():
        raise StackError(f"celery worker {worker.config.name} died; its log: {worker.log_path}\n"
                         f"{procs.log_tail(worker.log_path)}")
