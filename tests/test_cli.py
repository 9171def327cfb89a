"""The CLI in-process (errors, exit codes, no tracebacks) plus real subprocess runs."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("args, code, needle", [
    (["run", "n_plus_on"], 2, "did you mean n_plus_one?"),
    (["run", "cachign"], 2, "did you mean caching?"),
    (["run", "n_plus_one", "--profile", "quik"], 2, "did you mean quick?"),
    (["run", "n_plus_one", "--variants", "prefetch_relatd"], 2, "did you mean prefetch_related?"),
    (["run", "n_plus_one", "--stack", "dokcer"], 2, "unknown stack"),
    (["run", "n_plus_one", "--param", "books"], 2, "expected NAME=VALUE"),
    (["run", "n_plus_one", "--param", "books=ten"], 2, "bad value 'ten' for parameter 'books'"),
    (["run", "n_plus_one", "--param", "books=-3"], 2, "bad value"),
    (["run", "n_plus_one", "--param", "pages=3"], 2, "has parameter 'pages' (parameters — n_plus_one: books, catalog)"),
    (["run", "n_plus_one", "--seed", "-1"], 2, ""),
    (["show", "nope", "--results-dir", "/nonexistent"], 2, "no run 'nope'"),
    (["frobnicate"], 2, ""),
])
def test_bad_input_is_a_clear_error(args, code, needle):
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_help_everywhere():
    for args in (["--help"], ["run", "--help"], ["show", "--help"], ["list", "--help"], ["stack", "--help"],
                 ["stack", "up", "--help"]):
        result = invoke(*args)
        assert result.exit_code == 0, args
        assert "Usage" in result.output


def test_list_shows_scenarios_and_availability():
    result = invoke("list")
    assert result.exit_code == 0
    assert "n_plus_one" in result.output and "caching" in result.output
    assert "yes" in result.output


def test_external_stack_without_url_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = invoke("run", "n_plus_one", "--stack", "external")
    assert result.exit_code == 2
    assert "DATABASE_URL" in result.output


def test_external_stack_with_garbage_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://whatever")
    result = invoke("run", "n_plus_one", "--stack", "external")
    assert result.exit_code == 2
    assert "DATABASE_URL must look like" in result.output


def test_show_corrupted_file(tmp_path):
    (tmp_path / "20260101T000000Z-x-0000.json").write_text("{oops")
    result = invoke("show", "latest", "--results-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "corrupted" in result.output and "Traceback" not in result.output


def _cmdline(p: psutil.Process) -> str:
    """A process's command line, or "" for one that exited (a zombie has none to read)."""
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def _labs(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.stack
def test_real_run_subprocess(tmp_path, runtime_dir):
    proc = _labs("run", "n_plus_one", "--param", "books=3,6", "--param", "catalog=30",
                 "--results-dir", str(tmp_path), "--no-lesson")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "all checks passed" in out and "3 books" in out and "6 books" in out
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["complete"] is True and data["ok"] is True
    assert data["env"]["stack"]["kind"] == "embedded" and data["env"]["python"]
    assert "postgres" in data["env"]["stack"]["versions"]
    assert "password" not in files[0].read_text().lower()

    shown = _labs("show", "latest", "--results-dir", str(tmp_path))
    out, _ = shown.communicate(timeout=60)
    assert shown.returncode == 0 and "prefetch_related" in out


@pytest.mark.stack
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_child_and_marks_result_incomplete(tmp_path, runtime_dir, sig):
    from tests.helpers import Labs

    with Labs("run", "n_plus_one", "--param", "books=3,5,8", "--param", "catalog=30",
              "--results-dir", str(tmp_path), start_new_session=True) as proc:
        proc.wait_for("measuring")  # past boot and seeding, into the measured rounds
        children = {k.pid for k in psutil.Process(proc.pid).children(recursive=True)}
        assert any("postgres" in _cmdline(psutil.Process(k)) for k in children if psutil.pid_exists(k))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    time.sleep(0.5)
    alive = [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphans left: {alive}"
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1, "the partial result must be saved"
    data = json.loads(files[0].read_text())
    assert data["complete"] is False and data["reason"] == "interrupted"
