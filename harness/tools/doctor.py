"""`labs doctor`: is this machine ready for the lab? Each probe returns a row; the CLI renders."""
from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from dataclasses import dataclass

from harness.errors import LabsError

PACKAGES = ("django", "psycopg", "redis", "rich", "numpy", "matplotlib", "locust", "gunicorn")


@dataclass(frozen=True)
class Probe:
    what: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def probes(boot: bool = True) -> list[Probe]:
    """Every check, in order; `boot` also starts and stops the embedded stack once."""
    from harness.stack import embedded, pgbouncer, procs

    rows: list[Probe] = []

    def add(what: str, ok: bool, detail: str, fix: str = "", required: bool = True) -> None:
        rows.append(Probe(what, ok, detail, fix if not ok else "", required))

    add("Python ≥ 3.11", sys.version_info >= (3, 11), sys.version.split()[0], "install Python 3.11 or newer")
    for mod in PACKAGES:
        # find_spec, not import: importing locust would monkeypatch this process with gevent
        found = importlib.util.find_spec(mod) is not None
        add(f"package {mod}", found, "installed" if found else "missing", "pip install perf-lab")
    binaries_ok = True
    try:
        bindir = embedded.pg_bindir_candidates()
        add("PostgreSQL binaries", bool(bindir), str(bindir[0]) if bindir else "not found", embedded.INSTALL_PG)
        binaries_ok &= bool(bindir)
    except LabsError as exc:
        add("PostgreSQL binaries", False, exc.message, exc.hint or "")
        binaries_ok = False
    try:
        add("Valkey/Redis binary", True, str(embedded.valkey_binary()))
    except LabsError as exc:
        add("Valkey/Redis binary", False, exc.message, exc.hint or "")
        binaries_ok = False
    add("memcached (optional)", embedded.memcached_binary() is not None,
        "found" if embedded.memcached_binary() else "not found",
        "apt-get install memcached / brew install memcached", required=False)
    add("pgbouncer (optional)", pgbouncer.binary() is not None, "found" if pgbouncer.binary() else "not found",
        pgbouncer.INSTALL, required=False)
    from harness.stack import rabbitmq

    add("rabbitmq-server (optional)", rabbitmq.binary() is not None,
        "found" if rabbitmq.binary() else "not found", rabbitmq.INSTALL, required=False)
    free = shutil.disk_usage(embedded.runtime_dir()).free / 2**30
    add("disk space", free > 2, f"{free:.1f} GiB free in {embedded.runtime_dir()}", "free at least 2 GiB")
    try:
        add("loopback ports", True, f"127.0.0.1:{procs.free_port()} free")
    except OSError as exc:
        add("loopback ports", False, str(exc), "check the loopback interface")
    if boot and binaries_ok:
        from harness.stack import provider

        t0 = time.perf_counter()
        try:
            with provider("embedded").open() as info:
                ok = {"postgres", "redis"} <= set(info.urls)
            add("embedded stack boots", ok, f"PostgreSQL + Valkey up and down in {time.perf_counter() - t0:.1f} s")
        except LabsError as exc:
            add("embedded stack boots", False, exc.message.splitlines()[0], exc.hint or "see the message above")
    return rows


def ready(rows: list[Probe]) -> bool:
    return all(r.ok for r in rows if r.required)
