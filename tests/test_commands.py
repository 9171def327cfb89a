"""Commands as a user types them (subprocesses), asserting on what they print and write."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import subprocess
import sys

import psutil
import pytest

pytestmark = pytest.mark.stack
SMALL = ["--param", "books=3,6", "--param", "catalog=30"]


def labs(*args: str, cwd=None, env=None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def json_run(tmp_path_factory, runtime_dir):
    results = tmp_path_factory.mktemp("results")
    done = labs("run", "n_plus_one", *SMALL, "--json", "--results-dir", str(results))
    return done, results


def test_run_json_prints_the_stored_document(json_run):
    done, results = json_run
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    (stored,) = results.glob("*.json")
    assert printed["run_id"] == stored.stem and printed == json.loads(stored.read_text())
    assert printed["schema"] == 3 and printed["ok"] is True and printed["processes"] == 1
    assert {c["name"] for c in printed["cases"]} == {"books=3", "books=6"}
    assert printed["metrics"]["queries"]["kind"] == "exact"


def test_export_writes_pytest_benchmark_json(json_run, tmp_path):
    _done, results = json_run
    to_stdout = labs("export", "latest", "--results-dir", str(results))
    assert to_stdout.returncode == 0, to_stdout.stderr
    data = json.loads(to_stdout.stdout)
    assert len(data["benchmarks"]) == 10 and data["benchmarks"][0]["group"].startswith("n_plus_one:")
    target = tmp_path / "bench.json"
    to_file = labs("export", "latest", "--results-dir", str(results), "-o", str(target))
    assert to_file.returncode == 0 and json.loads(target.read_text()) == data
    bad = labs("export", "latest", "--format", "csv", "--results-dir", str(results))
    assert bad.returncode == 2 and "unknown export format 'csv'" in bad.stderr


def test_stack_up_status_down(tmp_path):
    # not under tmp_path: /tmp/pytest-of-root is 0700, which the PostgreSQL user cannot traverse
    runtime = tempfile.mkdtemp(prefix="perflab-warm-", dir="/var/tmp")
    os.chmod(runtime, 0o755)
    env = {"LABS_RUNTIME_DIR": runtime}
    try:
        _up_status_down(tmp_path, env)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _up_status_down(tmp_path, env):
    assert "no warm stack" in labs("stack", "status", env=env).stdout
    try:
        up = labs("stack", "up", env=env)
        assert up.returncode == 0, up.stderr[-2000:]
        assert "started" in up.stdout and "postgres" in up.stdout and "redis" in up.stdout
        pids = [int(line.split("│")[4]) for line in up.stdout.splitlines() if line.count("│") >= 6
                and line.split("│")[4].strip().isdigit()]
        assert pids and all(psutil.pid_exists(p) for p in pids)
        again = labs("stack", "up", env=env)
        assert "already running" in again.stdout
        status = labs("stack", "status", env=env)
        assert status.returncode == 0 and status.stdout.count("yes") >= 2
        run = labs("run", "n_plus_one", *SMALL, "--results-dir", str(tmp_path / "res"), "--no-chart", env=env)
        assert run.returncode == 0 and "stack_s 0.0s" in run.stdout  # attached to the warm stack
    finally:
        down = labs("stack", "down", env=env)
    assert down.returncode == 0 and "warm stack stopped" in down.stdout
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert "no warm stack" in labs("stack", "status", env=env).stdout


def test_doctor_on_a_ready_machine():
    done = labs("doctor")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "ready" in done.stdout and "embedded stack boots" in done.stdout
    assert "✗" not in done.stdout
