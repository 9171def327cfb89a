"""Fault tests with real processes: services killed mid-run, interrupts at each phase, two runs at
once, and a fuzzed sweep of bad input. Each asserts: clear message, right exit code, no traceback,
no orphan process, nothing half-written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import UsageError
from harness.results import store

SERVER_WORDS = ("postgres", "valkey-server", "memcached", "gunicorn", "pgbouncer")


def _labs(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for(proc: subprocess.Popen, word: str, timeout_s: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in _descendants(proc.pid):
            try:
                if word in " ".join(p.cmdline()):
                    return p
            except psutil.Error:
                continue
        assert proc.poll() is None, f"labs ended (exit {proc.poll()}) before a {word} process appeared"
        time.sleep(0.05)
    raise AssertionError(f"no {word} process appeared")


def _alive(pids) -> list[int]:
    out = []
    for p in pids:
        try:
            if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def _cmd(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def _servers(pid: int) -> set[int]:
    out = set()
    for p in _descendants(pid):
        try:
            if any(w in " ".join(p.cmdline()) for w in SERVER_WORDS):
                out.add(p.pid)
        except psutil.Error:
            pass
    return out


@pytest.mark.stack
@pytest.mark.parametrize("scenario, victim, params, service", [
    ("n_plus_one", "postgres", ["books=3,5,8,12", "catalog=40"], "PostgreSQL"),
    ("caching", "valkey-server", ["ops=60", "keys=20", "ops_per_sample=20", "catalog=30"], "Redis/Valkey"),
    ("gunicorn", "gunicorn", ["configs=sync_2", "endpoints=json", "rounds=8", "burst_s=1.0", "users=4",
                              "boot_rounds=1", "preload_workers=2"], "gunicorn (sync_2) died"),
])
def test_service_killed_mid_run(tmp_path, runtime_dir, scenario, victim, params, service):
    args = ["run", scenario, "--results-dir", str(tmp_path), "--no-chart"]
    for p in params:
        args += ["--param", p]
    from tests.helpers import Labs

    with Labs(*args, start_new_session=True) as proc:  # however the test ends, labs does not outlive it
        _wait_for(proc, victim)
        proc.wait_for("measuring")  # booted, seeded, measuring
        servers = _servers(proc.pid)
        # the server itself: the oldest live process of its kind (the postmaster, the gunicorn master),
        # never a `valkey-server --version` probe the stack ran while booting
        target = psutil.Process(min(p for p in servers if victim in _cmd(p) and "--version" not in _cmd(p)))
        target.kill()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out[-1000:], err[-2000:])
    assert service in err and "Traceback" not in err + out
    time.sleep(1.0)
    assert not _alive(servers), "every other child process must be stopped"
    (result_file,) = tmp_path.glob("*.json")
    data = json.loads(result_file.read_text())
    assert data["complete"] is False and service in data["reason"]
    # and the next run works
    again = _labs("run", "n_plus_one", "--param", "books=3", "--param", "catalog=30", "--results-dir",
                  str(tmp_path / "next"), "--no-chart")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]


@pytest.mark.stack
@pytest.mark.parametrize("phase", ["boot", "seeding", "measuring"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_at_each_phase(tmp_path, runtime_dir, phase, sig):
    """The signal lands in the phase named — labs says where it is, the test waits for that — and
    the run ends with 130, every child stopped, a partial result once measuring had begun."""
    from tests.helpers import Labs

    proc = Labs("run", "n_plus_one", "--param", "books=3,5,8,12,16", "--param", "catalog=60",
                "--results-dir", str(tmp_path), "--no-chart", start_new_session=True)
    seen: set[int] = set()
    try:
        if phase == "boot":
            _wait_for(proc, "postgres")
        else:
            proc.wait_for(phase)
        seen |= {p.pid for p in _descendants(proc.pid)}
        proc.send_signal(sig)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err + out
    files = [json.loads(f.read_text()) for f in tmp_path.glob("*.json")]
    # the message says what was kept, as it was
    assert ("partial result is saved" in err) == bool(files), err[-1500:]
    assert ("no result was saved" in err) == (not files), err[-1500:]
    if phase == "measuring":
        assert [(f["complete"], f["reason"]) for f in files] == [(False, "interrupted")], \
            "a run interrupted while measuring is saved, marked incomplete"
    while _alive(seen) and time.monotonic() - t0 < 5.0:
        time.sleep(0.1)
    assert not _alive(seen), f"children alive 5 s after the {phase} interrupt"
    files = list(tmp_path.glob("*.json"))
    assert not list(tmp_path.glob(".*.tmp")), "nothing half-written"
    for f in files:
        data = json.loads(f.read_text())  # every file present is complete JSON
        if proc.returncode == 130:
            assert data["complete"] is False and data["reason"] == "interrupted"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_while_python_starts_up_exits_130_or_by_the_signal(tmp_path, sig):
    """A signal landing while modules import: either Python had not reached labs yet (it dies by
    the signal, having started nothing) or labs says so and exits 130 - never anything else.

    CPython 3.11 marks a KeyboardInterrupt raised inside exec()/eval() (dataclasses, namedtuple,
    typing do that during imports) as unhandled even once caught, and then kills itself with
    SIGINT at exit; labs must end the process itself after an interrupt."""
    codes = []
    for i in range(24):
        proc = _labs("run", "n_plus_one", "--param", "books=3", "--param", "catalog=30",
                     "--results-dir", str(tmp_path), "--no-chart")
        time.sleep(0.08 + 0.01 * i)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        if proc.returncode == 1 and _python_still_starting(err):
            codes.append("site")  # the interpreter's own start-up, before any line of labs ran
            continue
        assert proc.returncode in (130, -sig), (proc.returncode, err[-1500:])
        if proc.returncode == 130:  # labs had its handler: the message, never a traceback
            assert "interrupted" in err and "Traceback" not in err + out
        # else: Python itself was still starting (a SIGINT there prints Python's own traceback)
        codes.append(proc.returncode)
    assert codes.count(130) >= 8, f"too few signals reached labs itself: {codes}"


def _python_still_starting(err: str) -> bool:
    """A signal during the interpreter's `site` initialisation (site-packages .pth files, such as an
    editable install's import hook) ends Python with exit 1 before labs exists: "Fatal Python error:
    init_import_site", or "Error processing line N of …pth" followed by the package not being
    found. On a slow machine that phase outlasts 80 ms. Nothing of labs ran, so nothing to stop."""
    return ("init_import_site" in err or
            ("Error processing line" in err and ".pth" in err and "No module named" in err))


@pytest.mark.stack
def test_two_runs_at_once_do_not_collide(tmp_path, runtime_dir):
    runs = [_labs("run", "n_plus_one", "--param", "books=3,5", "--param", "catalog=30", "--results-dir",
                  str(tmp_path / str(i)), "--no-chart") for i in range(2)]
    outs = [p.communicate(timeout=180) for p in runs]
    for p, (out, err) in zip(runs, outs):
        assert p.returncode == 0, err[-2000:]
    ids = set()
    for i in range(2):
        (f,) = (tmp_path / str(i)).glob("*.json")
        assert json.loads(f.read_text())["ok"]
        ids.add(f.stem)
    assert len(ids) == 2


# -- bad input: a sweep, then fuzzing -----------------------------------------------------------
BAD_INPUTS = [
    (["run"], 2, "Missing argument"),
    (["run", "nplusone"], 2, "did you mean n_plus_one"),
    (["run", "all", "--profile", "nighty"], 2, "did you mean nightly"),
    (["run", "caching", "--variants", "cache-aside"], 2, "did you mean cache_aside"),
    (["run", "caching", "--stack", "k8s"], 2, "unknown stack"),
    (["run", "caching", "--seed", "abc"], 2, "seed"),
    (["run", "caching", "--param", "ops=0"], 2, "bad value"),
    (["run", "caching", "--param", "=3"], 2, "NAME=VALUE"),
    (["run", "gil", "--param", "workers=two"], 2, "bad value"),
    (["run", "gil", "--param", "workloads="], 2, "NAME=VALUE"),
    (["run", "indexes", "--param", "rows=1e9x"], 2, "bad value"),
    (["compare", "-t", "time:", "previous", "latest"], 2, "bad threshold"),
    (["compare", "-t", "latency:5%", "previous", "latest"], 2, "bad threshold"),
    (["compare", "-t", "time:-10%", "previous", "latest"], 2, "bad threshold"),
    (["compare", "--format", "yaml"], 2, "unknown format"),
    (["ci", "--suite", "weekly"], 2, "unknown suite"),
    (["ci", "--confirm", "9"], 2, ""),
    (["history", "nope"], 2, "unknown scenario"),
    (["history", "caching", "--metric", "bogus"], 2, ""),
    (["report", "nope"], 2, "no run"),
    (["report", "latest", "--format", "docx"], 2, "unknown format"),
    (["baseline", "save", "a/b"], 2, "bad baseline name"),
    (["baseline", "save", ""], 2, "bad baseline name"),
    (["explain", "nope"], 2, "unknown scenario"),
    (["profile", "n_plus_one"], 2, "Missing option"),
    (["profile", "n_plus_one", "--variant", "nope"], 2, "unknown variant"),
    (["serve", "--host", "10.0.0.1"], 2, "loopback"),
    (["serve", "--port", "0"], 2, ""),
    (["stack", "up", "--stack", "podman"], 2, "unknown stack"),
    (["show", "latest"], 2, "no latest run"),
    (["frobnicate"], 2, "No such command"),
]


@pytest.mark.parametrize("args, code, needle", BAD_INPUTS, ids=[" ".join(a) or "empty" for a, _, _ in BAD_INPUTS])
def test_bad_input_sweep(tmp_path, args, code, needle):
    extra = ["--results-dir", str(tmp_path)] if args and args[0] in {
        "compare", "history", "report", "baseline", "show", "ci"} and args[:2] != ["baseline", "list"] else []
    if args[:2] == ["baseline", "save"] or args[:1] in (["history"], ["report"], ["show"], ["compare"], ["ci"]):
        args = [*args, *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == code, res.output
    assert needle in res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_garbage_database_url_is_a_usage_error(tmp_path, monkeypatch):
    for garbage in ("not a url", "postgresql://:99999999/x", "http://db:5432/x"):
        monkeypatch.setenv("DATABASE_URL", garbage)
        res = CliRunner().invoke(app, ["run", "n_plus_one", "--stack", "external", "--results-dir", str(tmp_path)])
        assert res.exit_code == 2, (garbage, res.output)
        assert "DATABASE_URL" in res.output and "Traceback" not in res.output


def test_a_directory_where_a_result_should_be(tmp_path):
    (tmp_path / "20260101T000000Z-x-0000.json").mkdir()
    res = CliRunner().invoke(app, ["show", "latest", "--results-dir", str(tmp_path)])
    assert res.exit_code == 2 and "cannot read" in res.output


TOKENS = st.sampled_from(["run", "show", "compare", "report", "history", "baseline", "--profile", "--variants",
                          "--param", "--stack", "--format", "-t", "--seed", "quick", "full", "latest", "previous",
                          "x=1", "time:5%", "nope", "--json", "-", "--", "ü", "%", "{}"]) | st.text(
    alphabet="abcxyz019=:%-_/.,ü ", max_size=12)


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(TOKENS, max_size=6))
def test_fuzz_cli_arguments_never_traceback(tmp_path, args):
    # never let the fuzzer start a real run: a valid scenario name after `run` is replaced
    if args and args[0] == "run":
        args = [a if a not in {"n_plus_one", "caching", "gil", "gunicorn", "pooling", "indexes", "all"} else "zz"
                for a in args]
    res = CliRunner().invoke(app, [*args, "--results-dir", str(tmp_path)] if args[:1] in (
        ["show"], ["compare"], ["report"], ["history"]) else args)
    assert res.exit_code in (0, 1, 2), (args, res.output)
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))


SHORT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_019é", max_size=8)
def _nested(children):
    return st.lists(children, max_size=4) | st.dictionaries(SHORT, children, max_size=5)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | SHORT, _nested,
                    max_leaves=20)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(JSON, st.fixed_dictionaries({"schema": st.just(1), "cases": st.lists(JSON, max_size=2)}, optional={
    "scenario": SHORT, "run_id": SHORT, "complete": st.booleans()})))
def test_fuzz_results_loader_only_raises_usage_errors(tmp_path, doc):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc))
    try:
        store.load(path)
    except UsageError:
        pass


def test_disk_full_keeps_previous_results(tmp_path, monkeypatch):
    from tests.test_store import make_result

    first = store.save(make_result(), tmp_path)
    before = first.read_bytes()
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, *a, **k):
            self.fh = real_fdopen(fd, *a, **k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, _text):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "fdopen", Full)
    with pytest.raises(UsageError, match="No space left"):
        store.save(make_result(), tmp_path)
    monkeypatch.undo()
    assert first.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_generated_configs_are_local_only(runtime_dir):
    from harness.stack.pgbouncer import PgBouncer, binary

    from tests.helpers import need

    need("pgbouncer", binary() is not None, "apt-get install pgbouncer")
    from harness.stack import embedded

    workdir = embedded.runtime_dir() / "pgb-config-test"
    b = PgBouncer(workdir, "postgresql://postgres@127.0.0.1:5/perflab")
    try:
        b.start()
        ini = (workdir / "pgbouncer.ini").read_text()
        assert "listen_addr = 127.0.0.1" in ini and "unix_socket_dir =\n" in ini
        proc = psutil.Process(b.proc.pid)
        listening = [c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening and set(listening) == {"127.0.0.1"}
    finally:
        b.stop()


@pytest.mark.stack
def test_postgres_hba_allows_only_local(stack):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT type, address FROM pg_hba_file_rules WHERE error IS NULL")
        rules = cur.fetchall()
        cur.execute("SHOW listen_addresses")
        listen = cur.fetchone()[0]
    assert listen == "127.0.0.1"
    for kind, address in rules:
        assert kind == "local" or address in {"127.0.0.1", "::1"}, (kind, address)
