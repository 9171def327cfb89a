"""A real Gunicorn serving the lab app, started and stopped by the harness.

Binds 127.0.0.1 on a free port; its output goes to a log file kept with the run's results;
it dies with us (parent-death signal) and is stopped with its whole process group.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.errors import StackError
from harness.stack import procs


@dataclass(frozen=True)
class ServerConfig:
    name: str
    worker_class: str = "sync"
    workers: int = 2
    threads: int = 1
    preload: bool = False
    max_requests: int = 0
    max_requests_jitter: int = 0
    asgi: bool = False
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the app (e.g. LABS_CONN_MAX_AGE, DATABASE_URL through PgBouncer)."""

    @property
    def app(self) -> str:
        return "labs.asgi:application" if self.asgi else "labs.wsgi:application"

    def describe(self) -> str:
        parts = [f"{self.worker_class} ×{self.workers}"]
        if self.threads > 1:
            parts.append(f"{self.threads} threads")
        if self.preload:
            parts.append("preload")
        if self.max_requests:
            parts.append(f"max-requests {self.max_requests}±{self.max_requests_jitter}")
        return ", ".join(parts)


def get(url: str, timeout_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP GET (no retries): status, headers, body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


class Server:
    def __init__(self, config: ServerConfig, log_dir: Path, base_env: dict[str, str]) -> None:
        self.config = config
        self.log_path = log_dir / f"gunicorn-{config.name}.log"
        self.base_env = base_env
        self.port = 0
        self.proc = None
        self.boot_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> float:
        c = self.config
        env = {**os.environ, **self.base_env, **c.env, "DJANGO_SETTINGS_MODULE": "labs.settings",
               "PYTHONUNBUFFERED": "1"}
        for _attempt in range(3):
            self.port = procs.free_port()
            argv = [sys.executable, "-m", "gunicorn", c.app, "--bind", f"127.0.0.1:{self.port}",
                    "--workers", str(c.workers), "--worker-class", c.worker_class, "--threads", str(c.threads),
                    "--timeout", "30", "--graceful-timeout", "5", "--error-logfile", "-", "--log-level", "warning",
                    "--chdir", str(Path(__file__).resolve().parents[2])]
            if c.preload:
                argv.append("--preload")
            if c.max_requests:
                argv += ["--max-requests", str(c.max_requests), "--max-requests-jitter", str(c.max_requests_jitter)]
            t0 = time.perf_counter()
            self.proc = procs.start(argv, self.log_path, env=env, death_signal=signal.SIGTERM)
            try:
                procs.wait_ready(f"gunicorn ({c.name})", self._ready, self.proc, self.log_path, timeout_s)
            except StackError:
                self.stop()
                if "in use" in self.log_path.read_text(errors="replace"):
                    continue
                raise
            self.boot_s = time.perf_counter() - t0
            return self.boot_s
        raise StackError(f"gunicorn ({c.name}) could not bind a free port after 3 tries")

    def _ready(self) -> bool:
        # ready = every worker answers: a few requests in a row succeed
        try:
            return all(get(self.url + "/json", 2.0)[0] == 200 for _ in range(3))
        except OSError:
            return False

    def processes(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            master = psutil.Process(self.proc.pid)
            return [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def worker_pids(self) -> set[int]:
        return {p.pid for p in self.processes()[1:]}

    def memory(self) -> dict[str, float]:
        """Total USS and PSS of master + workers, in MiB (what the worker set really costs)."""
        uss = pss = 0.0
        for p in self.processes():
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            uss += info.uss
            pss += getattr(info, "pss", info.uss)
        return {"uss_mib": round(uss / 2**20, 1), "pss_mib": round(pss / 2**20, 1)}

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        procs.stop_child(self.proc, signal.SIGTERM)
        self.proc = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wrong_world_rows(rows: list[dict]) -> int:
    """How many {"id", "randomNumber"} rows a server returned do not match the World table: the id
    does not exist, or its randomNumber differs (a status 200 with wrong data is still wrong)."""
    from labs.bookstore.models import World

    truth = World.objects.in_bulk([r.get("id") for r in rows if isinstance(r.get("id"), int)])
    return sum(1 for r in rows if r.get("id") not in truth or truth[r["id"]].random_number != r.get("randomNumber"))


def db_answers(url: str, path: str = "/db", requests: int = 5) -> tuple[tuple[int, ...], int, int]:
    """GET `path` (one World row as JSON) `requests` times: (statuses, rows checked, wrong rows)."""
    statuses, rows = [], []
    for _ in range(requests):
        status, _headers, body = get(url + path, 10)
        statuses.append(status)
        if status == 200:
            rows.append(json.loads(body))
    return tuple(sorted(set(statuses))), len(rows), wrong_world_rows(rows)


def verify(url: str) -> dict:
    """TechEmpower-style verification of the lab's endpoints: deterministic facts, no timings. Rows
    are checked against the database, not only for their shape."""
    facts: dict = {}
    status, headers, body = get(url + "/json")
    facts["json"] = (status, headers.get("content-type"), json.loads(body))
    status, headers, body = get(url + "/db")
    doc = json.loads(body)
    facts["db"] = (status, headers.get("content-type"), sorted(doc), 1 <= doc["id"] <= 10_000,
                   wrong_world_rows([doc]) == 0)
    for raw, expected in (("", 1), ("0", 1), ("abc", 1), ("5", 5), ("501", 500), ("-3", 1)):
        status, headers, body = get(url + f"/queries?queries={raw}")
        rows = json.loads(body)
        facts[f"queries={raw or 'missing'}"] = (status, len(rows), len(rows) == expected,
                                                all(sorted(r) == ["id", "randomNumber"] for r in rows),
                                                wrong_world_rows(rows) == 0)
    status, headers, body = get(url + "/fortunes")
    text = body.decode()
    facts["fortunes"] = (status, headers.get("content-type"), text.count("<tr>"),
                         "Additional fortune added at request time." in text,
                         "&lt;script&gt;" in text and "<script>" not in text)
    for path in ("/cpu", "/io"):
        status, headers, body = get(url + path)
        facts[path] = (status, headers.get("content-type"), sorted(json.loads(body)))
    return facts


EXPECTED_FACTS = {
    "json": (200, "application/json", {"message": "Hello, World!"}),
    "fortunes": (200, "text/html; charset=utf-8", 14, True, True),
}
