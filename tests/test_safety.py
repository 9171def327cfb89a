"""The safety suite: the lab never writes to a database it did not create, explaining a statement
never changes data, another local account cannot use the lab's servers, and no credential reaches
anything stored or printed.

The "external" server here is a separately started embedded stack, as a user's own PostgreSQL
would be: its `postgres` database holds a user's tables (one named `ix_…`, the pattern the indexes
scenario once dropped by; one referencing a `bookstore_book` of the user's, which the seed's
`TRUNCATE … CASCADE` once emptied).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from harness.stack import embedded, procs
from harness.stack.ownership import CLAIM_FLAG, MARKER
from harness.stack.urls import pg_connect_kwargs, redact, redact_target, with_database, with_userinfo

USER_TABLES = """
CREATE TABLE ix_customer_notes (id serial PRIMARY KEY, note text NOT NULL);
CREATE TABLE bookstore_book (id serial PRIMARY KEY, title text NOT NULL);
CREATE TABLE customer_orders (id serial PRIMARY KEY, book_id int NOT NULL REFERENCES bookstore_book(id));
INSERT INTO ix_customer_notes (note) SELECT 'note ' || g FROM generate_series(1, 50) g;
INSERT INTO bookstore_book (title) SELECT 'mine ' || g FROM generate_series(1, 20) g;
INSERT INTO customer_orders (book_id) SELECT 1 + g % 20 FROM generate_series(1, 40) g;
"""


@pytest.fixture(scope="module")
def external(runtime_dir):
    """A user's own server with a database full of their tables."""
    stack = embedded.EmbeddedStack(embedded.runtime_dir() / "safety-external")
    stack.start(with_memcached=embedded.memcached_binary() is not None)
    url = with_database(stack.services["postgres"].url, "users_app")
    with psycopg.connect(**pg_connect_kwargs(url, "postgres"), autocommit=True) as admin:
        admin.execute("CREATE DATABASE users_app")
        admin.execute("CREATE DATABASE users_empty")
    with psycopg.connect(**pg_connect_kwargs(url), autocommit=True) as conn:
        conn.execute(USER_TABLES)
    yield stack, url
    stack.stop()
    shutil.rmtree(stack.base, ignore_errors=True)


def fingerprint(url: str) -> dict[str, str]:
    """Every user table's rows, hashed: equal before and after means byte-for-byte unchanged."""
    out = {}
    with psycopg.connect(**pg_connect_kwargs(url)) as conn:
        for table in ("ix_customer_notes", "bookstore_book", "customer_orders"):
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
        out["relations"] = repr(conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1").fetchall())
    return out


def labs(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def external_env(stack, url: str) -> dict:
    return {"DATABASE_URL": url, "REDIS_URL": stack.services["redis"].url}


# -- the lab works only in a database of its own ------------------------------------------------------
@pytest.mark.stack
@pytest.mark.parametrize("command", [
    ("run", "indexes", "--profile", "quick"),
    ("run", "n_plus_one", "--param", "books=3", "--param", "catalog=30"),
    ("explain", "n_plus_one", "--param", "books=3", "--param", "catalog=30"),
    # the flag hands over only an empty database: this one is not
    ("run", "n_plus_one", CLAIM_FLAG, "--param", "books=3", "--param", "catalog=30"),
])
def test_a_users_database_is_refused_and_left_unchanged(external, tmp_path, command):
    stack, url = external
    before = fingerprint(url)
    done = labs(*command, "--stack", "external", *(["--results-dir", str(tmp_path)] if command[0] == "run" else []),
                env=external_env(stack, url))
    assert done.returncode == 2, done.stdout[-1500:] + done.stderr[-1500:]
    assert "was not created by the lab" in done.stderr and "ix_customer_notes" in done.stderr
    assert "Traceback" not in done.stderr and stack.secret not in done.stdout + done.stderr
    assert fingerprint(url) == before


@pytest.mark.stack
def test_an_empty_database_is_claimed_only_when_handed_over(external, tmp_path):
    stack, url = external
    empty = with_database(url, "users_empty")
    args = ("run", "n_plus_one", "--stack", "external", "--no-chart", "--results-dir", str(tmp_path),
            "--param", "books=3", "--param", "catalog=30")
    refused = labs(*args, env=external_env(stack, empty))
    assert refused.returncode == 2 and CLAIM_FLAG in refused.stderr, refused.stderr[-1500:]
    with psycopg.connect(**pg_connect_kwargs(empty)) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                            ).fetchone()[0] == 0  # refused before a byte was written
    done = labs(*args[:2], CLAIM_FLAG, *args[2:], env=external_env(stack, empty))
    assert done.returncode == 0, done.stderr[-2000:]
    with psycopg.connect(**pg_connect_kwargs(empty)) as conn:
        (how,) = conn.execute(f"SELECT how FROM public.{MARKER}").fetchone()
    assert CLAIM_FLAG in how


@pytest.mark.stack
def test_a_missing_database_is_created_and_marked(external):
    from harness.stack.ownership import ensure_owned

    stack, url = external
    fresh = with_database(url, "lab_fresh")
    ensure_owned(fresh)
    with psycopg.connect(**pg_connect_kwargs(fresh)) as conn:
        (how,) = conn.execute(f"SELECT how FROM public.{MARKER}").fetchone()
    assert how == "created by the lab"
    ensure_owned(fresh)  # marked: accepted again, nothing claimed twice
    with psycopg.connect(**pg_connect_kwargs(fresh)) as conn:
        assert conn.execute(f"SELECT count(*) FROM public.{MARKER}").fetchone()[0] == 1


# -- explaining a statement never changes data ----------------------------------------------------------
@pytest.mark.stack
def test_explain_of_a_writing_statement_leaves_the_data_unchanged(stack):
    from django.db import connection

    from harness.measure import counters
    from harness.tools.diagnose import PLANNED, ROLLED_BACK, plan_of

    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS safety_rows")
        cur.execute("CREATE TABLE safety_rows (id int PRIMARY KEY)")
        cur.execute("INSERT INTO safety_rows SELECT generate_series(1, 10)")
    statements = ["WITH d AS (DELETE FROM safety_rows WHERE id <= 2 RETURNING id) SELECT count(*) FROM d",
                  "WITH i AS (INSERT INTO safety_rows VALUES (100) RETURNING id) SELECT * FROM i",
                  "UPDATE safety_rows SET id = id + 1000 WHERE id = 3"]
    try:
        for sql in statements:
            plan, how = plan_of(sql, None)
            assert how == PLANNED and counters.modifies(plan) and "Actual Rows" not in json.dumps(plan)
            plan, how = plan_of(sql, None, analyze_writes=True)
            assert how == ROLLED_BACK and "Actual Rows" in json.dumps(plan)  # it did run…
            with pytest.raises(counters.WritesData):  # …and a read-only ANALYZE refuses to
                counters.plan_json(sql, None, analyze=True)
            with connection.cursor() as cur:  # …and nothing of it stayed
                cur.execute("SELECT array_agg(id ORDER BY id) FROM safety_rows")
                assert cur.fetchone()[0] == list(range(1, 11)), sql
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TABLE safety_rows")


# -- another local account cannot use the lab's servers ---------------------------------------------------
def _send(port: int, payload: bytes, lines: int = 1) -> bytes:
    """Send `payload`, read until `lines` reply lines arrived (or the server closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        reply = b""
        while reply.count(b"\r\n") < lines:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


@pytest.mark.stack
def test_no_server_of_a_running_stack_takes_a_login_without_its_secret(external):
    stack, url = external
    pg = stack.services["postgres"]
    for user in ("postgres", "nobody"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host="127.0.0.1", port=pg.port, user=user, dbname="postgres", connect_timeout=5).close()
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host="127.0.0.1", port=pg.port, user=user, password="guess", dbname="postgres",
                            connect_timeout=5).close()
    redis = stack.services["redis"]
    assert _send(redis.port, b"PING\r\n").startswith(b"-NOAUTH")
    assert _send(redis.port, b"CONFIG SET protected-mode no\r\n").startswith(b"-NOAUTH")
    # and with the secret, CONFIG SET (rebinding it to every interface) and DEBUG are still refused
    auth = f"AUTH {stack.secret}\r\n".encode()
    for command in (b"CONFIG SET bind 0.0.0.0", b"CONFIG SET protected-mode no", b"DEBUG SLEEP 0",
                    b"MODULE LIST", b"SHUTDOWN NOSAVE", b"REPLICAOF 127.0.0.1 1"):
        authed, refused = _send(redis.port, auth + command + b"\r\n", lines=2).split(b"\r\n")[:2]
        assert authed == b"+OK" and refused.startswith((b"-NOPERM", b"-ERR")), (command, refused)
    assert _send(redis.port, auth + b"PING\r\n", lines=2).split(b"\r\n")[1] == b"+PONG"  # still up
    if "memcached" in stack.services:
        assert b"unauthenticated" in _send(stack.services["memcached"].port, b"get anything\r\n")
        assert b"authentication failure" in _send(stack.services["memcached"].port,
                                                  b"set auth 0 0 11\r\nnobody pass\r\n")


@pytest.mark.stack
def test_pgbouncer_takes_only_the_stacks_password(external, tmp_path):
    from harness.stack import pgbouncer

    if pgbouncer.binary() is None:
        pytest.skip("no pgbouncer binary") if not os.environ.get("CI") else pytest.fail("pgbouncer missing in CI")
    stack, url = external
    bouncer = pgbouncer.PgBouncer(embedded.runtime_dir() / "safety-pgb", with_database(stack.services["postgres"].url,
                                                                                       "postgres"))
    bouncer.start()
    try:
        good = bouncer.url("postgres", "postgres")
        with psycopg.connect(good, prepare_threshold=None, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        for password in (None, "guess"):
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(with_userinfo(good, "postgres", password), connect_timeout=5).close()
        assert (bouncer.workdir / "userlist.txt").stat().st_mode & 0o077 == 0
    finally:
        bouncer.stop()
        shutil.rmtree(bouncer.workdir, ignore_errors=True)


@pytest.mark.stack
def test_another_account_cannot_read_the_secrets(external):
    if os.geteuid() != 0:
        pytest.skip("switching to another account needs root") if not os.environ.get("CI") else pytest.fail(
            "CI runs as root")
    stack, _url = external
    state = embedded.write_state(stack, embedded.runtime_dir() / "safety-state.json")
    secret_files = [state, stack.base / "valkey" / "valkey.conf"]
    if "memcached" in stack.services:
        secret_files.append(stack.base / "memcached.auth")
    try:
        for path in secret_files:
            assert path.exists(), path
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
            done = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(path)], capture_output=True, text=True)
            assert done.returncode != 0 and stack.secret not in done.stdout, path
    finally:
        state.unlink(missing_ok=True)


# -- credentials never reach anything stored or printed -----------------------------------------------------
def test_redaction_of_service_urls_and_load_targets():
    assert redact("postgresql://u:s3cret@h:5432/db?sslmode=require") == "postgresql://u:***@h:5432/db?sslmode=require"
    # an unencoded '#' or '/' in a password: the URL does not parse, and nothing of the secret shows
    for garbled in ("postgresql://u:se#cr/et@h:5432/db", "redis://:pa/ss#w@h:6379/0"):
        assert "se" not in redact(garbled).split("@")[0].replace("postgresql", "").replace("redis", "")
        assert "***@" in redact(garbled)
    shown = redact_target("http://admin:S3cretPass@127.0.0.1:8000/path?token=abc123&page=2")
    assert shown == "http://127.0.0.1:8000/path?token=***&page=2"


@pytest.mark.stack
def test_load_stores_no_credentials_and_follows_no_redirect(tmp_path):
    """A target that answers every request with a 302 to another host: the redirect is counted as
    a failed request (its status named), never followed; the stored result has no credentials."""
    import http.server
    import threading

    hits = {"elsewhere": 0}

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.startswith("/elsewhere"):
                hits["elsewhere"] += 1
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self.server.server_address[1]}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", procs.free_port()), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        done = labs("load", f"http://admin:S3cretPass@127.0.0.1:{port}/?token=abc123", "--users", "2",
                    "--duration", "0.5", "--bursts", "1", "--max-requests", "50", "--results-dir", str(tmp_path),
                    timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1, done.stderr[-2000:]  # every request "failed": a 302 is not a 200
    assert hits["elsewhere"] == 0
    stored = "\n".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    for secret in ("S3cretPass", "abc123", "admin:"):
        assert secret not in stored and secret not in done.stdout + done.stderr, secret
    (result,) = Path(tmp_path).glob("*.json")
    metrics = json.loads(result.read_text())["cases"][0]["variants"]["target"]["metrics"]
    assert metrics["requests"] > 0 and metrics["failures"] == metrics["requests"]


def test_load_refuses_a_rate_it_cannot_hold_in_memory(tmp_path):
    done = labs("load", "http://127.0.0.1:1/", "--rate", "1e9", "--results-dir", str(tmp_path), timeout=60)
    assert done.returncode == 2 and "--rate" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.stack
def test_serve_error_pages_hide_service_urls(stack):
    from django.test import RequestFactory

    from labs.serve_guard import SecretsFilter

    request = RequestFactory().get("/", DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:5/x",
                                   REDIS_URL="redis://:hunter3@127.0.0.1:6/0")
    meta = SecretsFilter().get_safe_request_meta(request)
    assert "hunter2" not in repr(meta) and "hunter3" not in repr(meta)
    cleansed = SecretsFilter().cleanse_setting("CACHES", {"default": {"LOCATION": "redis://:hunter4@h/0"}})
    assert "hunter4" not in repr(cleansed)


def test_an_unwritable_results_dir_is_refused_before_anything_runs(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = labs("run", "n_plus_one", "--results-dir", str(blocker / "results"), timeout=60)
    assert done.returncode == 2 and "cannot write results" in done.stderr and "nothing was run" in done.stderr
    assert "PostgreSQL" not in done.stderr and "Traceback" not in done.stderr


def test_two_ci_jobs_never_share_an_out_dir(tmp_path):
    from harness.results import store

    out = tmp_path / "ci-out"
    with store.locked_dir(out, "labs ci"):
        done = labs("ci", "--scenario", "n_plus_one", "--out-dir", str(out), "--results-dir", str(tmp_path / "r"),
                    timeout=60)
    assert done.returncode == 2 and "another labs ci is writing" in done.stderr, done.stderr[-1500:]
    assert not (out / "summary.md").exists()


@pytest.mark.stack
def test_runs_on_a_shared_stack_take_turns(external, tmp_path):
    import threading
    import time

    from harness.stack.ownership import ensure_owned, exclusive_run

    stack, url = external
    lab = with_database(url, "lab_turns")
    ensure_owned(lab)
    held, release = threading.Event(), threading.Event()

    def other_run():
        with exclusive_run(lab):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=other_run)
    holder.start()
    assert held.wait(30)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "n_plus_one", "--stack", "external",
                             "--no-chart", "--results-dir", str(tmp_path), "--param", "books=3", "--param",
                             "catalog=30"], env={**os.environ, **external_env(stack, lab)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    assert proc.poll() is None and not list(tmp_path.glob("*.json"))  # it waits, writing nothing
    release.set()
    holder.join()
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-2000:]
    assert "another run is using the lab database 'lab_turns'" in stderr


HANGS = '''import threading
import time

from harness.scenario import Case, Scenario, Variant


def forever(ctx):
    def unit():
        try:
            while True:
                time.sleep(0.05)
        except Exception:  # a variant that swallows errors still ends at the deadline
            pass
    return unit


def leaky(ctx):
    threading.Thread(target=time.sleep, args=(3600,), name="leaked-sleeper").start()  # not a daemon
    return lambda: sum(range(100))


SCENARIO = Scenario(
    name="hangs", title="one case never returns", requires=frozenset({"postgres"}),
    profiles={"quick": {}, "full": {}},
    cases=lambda p: [Case("stuck", {}, "a", (Variant("a", forever), Variant("b", forever))),
                     Case("fine", {}, "a", (Variant("a", leaky), Variant("b", lambda ctx: lambda: sum(range(50)))))],
)
'''


@pytest.mark.stack
def test_a_case_that_never_returns_times_out_and_the_rest_is_kept(tmp_path):
    import time

    (tmp_path / "perf").mkdir()
    (tmp_path / "perf" / "hangs.py").write_text(HANGS)
    (tmp_path / "labs.toml").write_text('scenario_paths = ["perf"]\n')
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness", "run", "hangs", "--case-timeout", "4", "--no-chart",
                           "--results-dir", str(tmp_path / "results")], capture_output=True, text=True, cwd=tmp_path,
                          timeout=180, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    elapsed = time.monotonic() - t0
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    (saved,) = (tmp_path / "results").glob("*.json")
    result = json.loads(saved.read_text())
    assert result["complete"] is False and "case stuck of hangs timed out after 4 s" in result["reason"]
    assert [c["name"] for c in result["cases"]] == ["fine"]  # the other case was measured and kept
    assert "still running at exit (leaked-sleeper" in done.stderr  # and the process did not hang
    assert elapsed < 120


def test_a_parameter_too_big_for_the_machine_is_refused(tmp_path):
    done = labs("run", "n_plus_one", "--param", "catalog=10000000000", "--results-dir", str(tmp_path), timeout=60)
    assert done.returncode == 2 and "above the lab's limit" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.stack
def test_rabbitmq_takes_only_its_own_account_and_leaves_no_epmd(tmp_path):
    import kombu
    import psutil

    from harness.stack import rabbitmq

    if rabbitmq.binary() is None:
        pytest.skip("no rabbitmq-server") if not os.environ.get("CI") else pytest.fail("rabbitmq-server missing in CI")
    def daemons() -> set[int]:
        return {p.pid for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "epmd" and "-daemon" in (p.info["cmdline"] or [])}

    before = daemons()
    broker = rabbitmq.RabbitMQ(embedded.runtime_dir() / "safety-rabbit")
    broker.start()
    try:
        family = {p.pid for p in psutil.Process(broker.proc.pid).children(recursive=True)} | {broker.proc.pid}
        assert broker.epmd is not None, "the broker's own epmd"
        family.add(broker.epmd.pid)
        with kombu.Connection(broker.url, connect_timeout=10) as ok:
            ok.connect()
        guest = broker.url.replace(f"perflab:{broker.secret}", "guest:guest")
        with pytest.raises(Exception, match="(?i)access|refused|auth|login"):
            with kombu.Connection(guest, connect_timeout=10) as refused:
                refused.connect()
        conf = broker.workdir / "rabbitmq.conf"
        assert conf.stat().st_mode & 0o077 == 0 and broker.secret in conf.read_text()
    finally:
        broker.stop()
        broker.keep_log(tmp_path / "rabbitmq.log")
    assert daemons() <= before  # no `epmd -daemon` outlives the broker
    assert not [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
