"""`labs serve`: the lab app with django-silk and the debug toolbar, to click through its endpoints.

On the session's stack, bound to loopback (unless asked otherwise), never used for measurements.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.errors import LabsError, UsageError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def check_bind(host: str, port: int, allow_remote: bool) -> None:
    from harness.stack import procs

    if host not in LOOPBACK and not allow_remote:
        raise UsageError(f"refusing to bind {host}: the lab app with debug tools must stay on loopback",
                         hint="use --allow-remote if you really mean to expose it")
    if procs.port_open(port, "127.0.0.1" if host in {"localhost", "0.0.0.0"} else host):
        raise UsageError(f"port {port} is already in use", hint="choose another with --port")


def serve(session, host: str, port: int, on_ready: Callable[[str, Path, str], None]) -> None:
    """Seed a small catalog, migrate the serve database, run `runserver` until it ends (Ctrl-C)."""
    from harness.stack import procs

    session.django(None)
    from labs.bookstore.seed import seed_catalog, seed_techempower

    seed_catalog(1_000)
    seed_techempower()
    token = secrets.token_urlsafe(24)
    env = {**os.environ, **session.info.env(), "DJANGO_SETTINGS_MODULE": "labs.settings_serve",
           "LABS_SECRET_KEY": secrets.token_urlsafe(40),  # a fresh key every run
           "LABS_SERVE_TOKEN": token, "LABS_SERVE_HOST": "" if host in LOOPBACK else host}
    done = subprocess.run([sys.executable, "-m", "django", "migrate", "--verbosity", "0"], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise LabsError(f"migrating the serve database failed (exit {done.returncode}): "
                        f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    logdir = Path(tempfile.mkdtemp(prefix="labs-serve-"))
    log = logdir / "runserver.log"
    child = procs.start([sys.executable, "-m", "django", "runserver", f"{host}:{port}", "--noreload",
                         "--skip-checks"], log, env=env)
    try:
        procs.wait_ready("the lab app", lambda: procs.port_open(port, "127.0.0.1" if host != "::1" else host),
                         child, log, timeout_s=30)
        on_ready(f"http://{'[::1]' if host == '::1' else host}:{port}", log, token)
        child.wait()
    finally:
        procs.stop_child(child)
        shutil.rmtree(logdir, ignore_errors=True)
