"""Connection pooling: none, persistent, Django's pool, PgBouncer (transaction and session).

Every variant connects as its own PostgreSQL role, so `pg_stat_activity` tells exactly which
server connections are whose. Two workloads:

  http   — Gunicorn (gthread) serving /db, driven by bounded Locust bursts; per variant the
           server connections held (sampled) and sessions opened per request;
  crowd  — more concurrent clients than PostgreSQL will take (a role with CONNECTION LIMIT):
           direct connections fail with "too many connections", a psycopg pool (what Django's
           pool is) times out, PgBouncer queues them — errors counted per variant.
And the failure PgBouncer's transaction mode causes without `prepare_threshold=None` is
reproduced on purpose (prepared statements live on a server connection the next transaction
may not get).
"""
from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
import urllib.parse
from pathlib import Path

from harness.errors import StackError
from harness.measure.http import Server, ServerConfig, db_answers
from harness.measure.load import LOAD_METRICS, Rig, generator_bound, summarize_bursts
from harness.measure.sweep import SWEEP_P99, SWEEP_SERVED, sweep_lines, sweep_rate
from harness.scenario import (
    Calibrated,
    Case,
    Check,
    Context,
    Metric,
    Scenario,
    SelfTimed,
    Variant,
    metric_check,
    same_result_as,
)
from harness.stack import embedded, urls
from harness.stack.pgbouncer import PgBouncer

ROLES = ("lab_no_pool", "lab_persistent", "lab_django_pool", "lab_pgb_tx", "lab_pgb_session", "lab_limited")
LIMITED = "lab_limited"


class ProvidedBouncer:
    """The PgBouncer the stack provides (PGBOUNCER_URL of an external or docker stack): used as it
    is — its own user and database, transaction pool mode as the compose file configures it."""

    def __init__(self, url: str) -> None:
        self.given = url
        self.user = urllib.parse.urlsplit(url).username or ""

    def url(self, _dbname: str, _user: str) -> str:
        return self.given

    def alive(self) -> bool:
        from harness.stack import procs

        u = urllib.parse.urlsplit(self.given)
        return procs.port_open(u.port or 6432, u.hostname or "127.0.0.1", timeout_s=2.0)


class Pools:
    """What the run shares (setup's value): PgBouncers by mode, and a Rig of servers + generator.
    A PgBouncer the stack provides (PGBOUNCER_URL) serves transaction mode; otherwise the lab
    starts its own (a local binary) and configures it, one role per variant."""

    def __init__(self, artifacts: Path, bouncer_pool: int, provided: str | None = None) -> None:
        self.artifacts = artifacts
        self.bouncer_pool = bouncer_pool
        self.provided = ProvidedBouncer(provided) if provided else None
        self.bouncers: dict[str, PgBouncer] = {}
        self.rig = Rig(artifacts)

    def role(self, variant: str) -> str:
        """The PostgreSQL role whose server connections are this variant's."""
        if variant == "pgbouncer_transaction" and self.provided is not None:
            return self.provided.user
        return ROLE_OF[variant]

    def bouncer(self, mode: str):
        if mode == "transaction" and self.provided is not None:
            return self.provided
        if mode not in self.bouncers:
            role = "lab_pgb_tx" if mode == "transaction" else "lab_pgb_session"
            # its files live in the runtime dir: PgBouncer runs as the service user, who may not be
            # able to reach the results folder (a checkout under /root); the log is copied at the end
            workdir = embedded.runtime_dir() / f"pgbouncer-{mode}-{os.getpid()}"
            b = PgBouncer(workdir, os.environ["DATABASE_URL"], mode, self.bouncer_pool,
                          {"perflab": role, "limited": LIMITED})
            self.bouncers[mode] = b
            b.start()
        return self.bouncers[mode]

    def assert_alive(self, server: Server | None = None) -> None:
        """A dead server or PgBouncer stops the run (exit 3), naming it; it is not a slow variant."""
        if server is not None and not server.alive():
            raise StackError(f"gunicorn ({server.config.name}) died during the run; its log: {server.log_path}")
        for mode, b in self.bouncers.items():
            if b.proc is None or b.proc.poll() is not None:
                raise StackError(f"PgBouncer ({mode} mode) died during the run; its log: "
                                 f"{b.workdir / 'pgbouncer.log'}")
        if self.provided is not None and not self.provided.alive():
            raise StackError("the stack's PgBouncer (PGBOUNCER_URL) is not answering any more")

    def close(self) -> None:
        try:
            self.rig.close()
        finally:
            for mode, b in self.bouncers.items():
                b.stop()
                log = b.workdir / "pgbouncer.log"
                if log.exists():
                    shutil.copy(log, self.artifacts / f"pgb_{mode}.log")
                shutil.rmtree(b.workdir, ignore_errors=True)
            self.bouncers.clear()


def _direct_url(role: str) -> str:
    """The stack's server and database as one of the lab's roles (its derived password)."""
    return urls.as_role(os.environ["DATABASE_URL"], role)


def _bouncer(ctx: Context, mode: str) -> PgBouncer:
    return ctx.shared.bouncer(mode)


def _server_config(name: str, ctx: Context) -> ServerConfig:
    p = ctx.params
    env = {"LABS_CONN_MAX_AGE": "0"}
    if name == "no_pool":
        env["DATABASE_URL"] = _direct_url("lab_no_pool")
    elif name == "persistent":
        env.update(DATABASE_URL=_direct_url("lab_persistent"), LABS_CONN_MAX_AGE="60")
    elif name == "django_pool":
        env.update(DATABASE_URL=_direct_url("lab_django_pool"), LABS_DB_POOL=p["django_pool"])
    elif name == "pgbouncer_transaction":
        # app connections to PgBouncer persist; server connections are lent per transaction
        env.update(DATABASE_URL=_bouncer(ctx, "transaction").url("perflab", "lab_pgb_tx"), LABS_PGBOUNCER_TX="1",
                   LABS_CONN_MAX_AGE="60")
    elif name == "pgbouncer_session":
        # a server connection is held for a whole client session: clients connect per request,
        # cheaply, to PgBouncer (persistent client sessions would pin the small pool for good)
        env.update(DATABASE_URL=_bouncer(ctx, "session").url("perflab", "lab_pgb_session"))
    return ServerConfig(f"pool-{name}", "gthread", p["workers"], threads=p["threads"], env=env)


def _connect_ms(url: str, samples: int = 20) -> float:
    """Median time to open (and close) one connection the way this variant's app does: what a
    request pays when it is not reused (no_pool pays it every time)."""
    import psycopg

    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        psycopg.connect(url, autocommit=True, prepare_threshold=None).close()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 3)


ROLE_OF = {"no_pool": "lab_no_pool", "persistent": "lab_persistent", "django_pool": "lab_django_pool",
           "pgbouncer_transaction": "lab_pgb_tx", "pgbouncer_session": "lab_pgb_session"}


class _ConnSampler:
    """Samples how many server connections a role holds, every 20 ms, on its own connection."""

    def __init__(self, role: str) -> None:
        import psycopg

        self.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        self.role = role
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sessions(self) -> int:
        return int(self.conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
                   .fetchone()[0])

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            while not self.stop.is_set():
                n = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [self.role]).fetchone()[0]
                self.peak = max(self.peak, int(n))
                self.stop.wait(0.02)

    def __enter__(self) -> _ConnSampler:
        self.peak = 0
        self.stop.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def close(self) -> None:
        self.conn.close()


def _available(name: str, ctx: Context) -> bool:
    """Whether this run's stack has what the strategy needs (the stack's PgBouncer, or one the lab starts)."""
    if name == "pgbouncer_transaction":
        return "pgbouncer" in ctx.components
    return not name.startswith("pgbouncer") or "pgbouncer_local" in ctx.components


def _http_variant(name: str, fraction: float | None = None, sweep: tuple[str, ...] = ()):
    """/db through Gunicorn with this pooling strategy: closed loop (the http case), or open loop
    at `fraction` × the best closed-loop capacity among the `sweep` strategies (the sweep case)."""
    def make(ctx: Context):
        pools: Pools = ctx.shared
        server = pools.rig.server(_server_config(name, ctx))
        if ctx.counting:
            ctx.metrics["connect_ms"] = _connect_ms(server.config.env["DATABASE_URL"])
            if name.startswith("pgbouncer"):
                ctx.metrics["bouncer"] = ("the stack's (PGBOUNCER_URL)" if name == "pgbouncer_transaction"
                                          and pools.provided is not None else "started by the lab")
            return lambda: db_answers(server.url)  # statuses, rows checked, rows not as in the database
        gen = pools.rig.loadgen()
        p = ctx.params
        paths = [("/db", 1)]
        offered = None
        if fraction is not None:
            offered = sweep_rate(fraction, lambda c: [(_server_config(n, c), paths) for n in sweep
                                                      if _available(n, c)])(pools.rig, server, paths, ctx)
        gen.burst(server.url, paths, p["users"], p["warmup_s"], rate=offered)
        sampler = _ConnSampler(pools.role(name))
        bursts: list[dict] = []

        def unit() -> float:
            if offered is not None:  # the sweep: latency and throughput only
                b = gen.burst(server.url, paths, p["users"], p["burst_s"], rate=offered)
                pools.assert_alive(server)
                bursts.append(b)
                return b["duration_s"] / b["requests"] if b["requests"] else b["duration_s"] * 1000
            s0 = sampler.sessions()
            with sampler:
                b = gen.burst(server.url, paths, p["users"], p["burst_s"])
            pools.assert_alive(server)
            time.sleep(0.6)  # PostgreSQL flushes session statistics when backends exit
            b["sessions_per_request"] = (sampler.sessions() - s0) / b["requests"] if b["requests"] else None
            b["server_conns"] = sampler.peak
            bursts.append(b)
            return b["duration_s"] / b["requests"] if b["requests"] else b["duration_s"] * 1000

        @ctx.on_close
        def close() -> None:
            sampler.close()
            if bursts and offered is not None:
                ctx.metrics.update(summarize_bursts(bursts))
                ctx.metrics["generator_bound"] = generator_bound(ctx.metrics)
            elif bursts:
                ctx.metrics.update(summarize_bursts(bursts, "sessions_per_request"),
                                   server_conns=max(b["server_conns"] for b in bursts))
        return unit
    return make


# -- the crowd: more clients than the server allows --------------------------------------------
def crowd(url: str, clients: int, hold_s: float, pool=None, errors: dict[str, int] | None = None) -> int:
    """`clients` threads connect at once, each holding one connection (its own, or one from
    `pool`) for `hold_s`. Failures are added to `errors` by kind; returns how many were served.
    Shared with the workshop's pooling exercise."""
    import psycopg
    from psycopg_pool import PoolTimeout

    errors = {} if errors is None else errors
    lock = threading.Lock()
    served = [False] * clients

    def client(i: int) -> None:
        try:
            if pool is not None:
                with pool.connection() as conn:
                    conn.execute("SELECT %s::int FROM pg_sleep(%s)", [i, hold_s]).fetchone()
            else:  # prepare_threshold=None: the URL may be PgBouncer in transaction mode
                with psycopg.connect(url, autocommit=True, prepare_threshold=None, connect_timeout=30) as conn:
                    conn.execute("SELECT %s::int FROM pg_sleep(%s)", [i, hold_s]).fetchone()
            served[i] = True
        except (psycopg.Error, PoolTimeout) as exc:
            kind = "PoolTimeout" if isinstance(exc, PoolTimeout) else (
                "too many connections" if "too many connections" in str(exc) else type(exc).__name__)
            with lock:
                errors[kind] = errors.get(kind, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(served)


def _crowd_variant(name: str):
    def make(ctx: Context):
        from psycopg_pool import ConnectionPool

        p = ctx.params
        clients, hold = p["clients"], p["hold_ms"] / 1000
        pool = None
        if name == "django_pool":
            pool = ConnectionPool(_direct_url(LIMITED), min_size=0, max_size=p["pool_max"], timeout=p["pool_timeout_s"],
                                  kwargs={"autocommit": True}, open=True)
        url = {"pgbouncer_transaction": lambda: _bouncer(ctx, "transaction").url("limited", LIMITED),
               "pgbouncer_session": lambda: _bouncer(ctx, "session").url("limited", LIMITED)}.get(
                   name, lambda: _direct_url(LIMITED))()
        errors: dict[str, int] = {}

        def unit():
            served = crowd(url, clients, hold, pool, errors)
            ctx.shared.assert_alive()
            return served

        if ctx.counting and name == "pgbouncer_transaction":
            ctx.metrics["prepared_statements"] = _prepared_statement_demo(ctx)

        @ctx.on_close
        def close() -> None:
            if pool is not None:
                pool.close()
            if ctx.counting:
                total = sum(errors.values())
                ctx.metrics.update(errors=total, error_rate=round(total / clients, 3), error_kinds=dict(errors))
        return unit
    return make


def _prepared_statement_demo(ctx: Context) -> dict[str, str]:
    """Through PgBouncer in transaction mode: prepared statements break, unless disabled."""
    import psycopg

    url = _bouncer(ctx, "transaction").url("perflab", "lab_pgb_tx")
    outcome = {}
    for label, threshold in (("prepare_threshold=0", 0), ("prepare_threshold=None", None)):
        conns = [psycopg.connect(url, autocommit=True, prepare_threshold=threshold) for _ in range(3)]
        try:
            for _ in range(10):
                for c in conns:  # interleaved clients: server connections get swapped under them
                    c.execute("SELECT count(*) FROM bookstore_fortune WHERE id > %s", [0]).fetchone()
            outcome[label] = "ok"
        except psycopg.Error as exc:
            outcome[label] = str(exc).strip().splitlines()[0][:120]
        finally:
            for c in conns:
                c.close()
    return outcome


def answers_match_database(variant: str) -> Check:
    """Every /db answer was status 200 and the row the database holds (not only the right keys)."""
    def fn(runs):
        statuses, rows, wrong = runs[variant].results[0]
        ok = tuple(statuses) == (200,) and rows > 0 and wrong == 0
        return ok, f"{rows} rows checked against the World table: {wrong} wrong; statuses {list(statuses)}"
    return Check("answers match the database", variant, fn)


def cases(params) -> list[Case]:
    names = ("no_pool", "persistent", "django_pool", "pgbouncer_transaction", "pgbouncer_session")
    # transaction mode can use the stack's PgBouncer; session mode and the crowd over a connection
    # limit need one the lab configures itself (its own roles and databases)
    needs = {n: frozenset({"pgbouncer"}) if n == "pgbouncer_transaction" else
             frozenset({"pgbouncer_local"}) if n.startswith("pgbouncer") else frozenset() for n in names}
    crowd_needs = {n: frozenset({"pgbouncer_local"}) if n.startswith("pgbouncer") else frozenset() for n in names}
    http = Case(
        "http", {k: params[k] for k in ("users", "burst_s", "warmup_s", "workers", "threads", "django_pool",
                                         "bouncer_pool")},
        "no_pool", tuple(Variant(n, _http_variant(n), requires=needs[n]) for n in names),
        (*(same_result_as(n, "no_pool") for n in names[1:]),
         *(answers_match_database(n) for n in names),
         *(metric_check(n, "failures", lambda v: v == 0, "== 0") for n in names),
         metric_check("persistent", "server_conns", lambda v, c=params["workers"] * params["threads"]: v is not None
                      and v <= c, f"<= {params['workers'] * params['threads']} (workers × threads)"),
         metric_check("pgbouncer_transaction", "server_conns", lambda v, c=params["bouncer_pool"]: v is not None
                      and v <= c, f"<= {params['bouncer_pool']} (PgBouncer pool size)"),
         metric_check("no_pool", "sessions_per_request", lambda v: v is not None and v >= 0.5,
                      ">= ~1 (a new connection per request)")),
        timing=SelfTimed(rounds=params["rounds"]), time_label="",
        title=f"http · /db through Gunicorn gthread {params['workers']}×{params['threads']} · "
              f"{params['users']} users", columns=("rps", "p50_ms", "p95_ms", "connect_ms", "server_conns",
                                                   "sessions_per_request", "failures"))
    crowd_names = ("no_pool", "django_pool", "pgbouncer_transaction")
    crowd = Case(
        "crowd", {k: params[k] for k in ("clients", "limit", "hold_ms", "pool_max", "pool_timeout_s", "bouncer_pool")},
        "no_pool", tuple(Variant(n, _crowd_variant(n), requires=crowd_needs[n]) for n in crowd_names),
        (metric_check("no_pool", "errors", lambda v: v is not None and v > 0,
                      f"> 0 (only {params['limit']} connections allowed for {params['clients']} clients)"),
         metric_check("pgbouncer_transaction", "errors", lambda v: v == 0, "== 0 (PgBouncer queues the rest)"),
         metric_check("django_pool", "error_kinds", lambda v: set(v) == {"PoolTimeout"},
                      "PoolTimeout only (the crowd outlasts the pool's timeout; nothing else fails)"),
         metric_check("pgbouncer_transaction", "prepared_statements",
                      lambda v: v is not None and v["prepare_threshold=None"] == "ok"
                      and v["prepare_threshold=0"] != "ok",
                      "break with prepared statements, work with prepare_threshold=None")),
        units=1, timing=Calibrated(rounds=params["crowd_rounds"]), title=f"crowd · {params['clients']} clients, CONNECTION LIMIT {params['limit']}, each holds "
                       f"{params['hold_ms']} ms", columns=("errors", "error_rate"))
    out = [http, crowd]
    if params.get("sweep_strategies"):
        sweep = tuple(params["sweep_strategies"])
        variants = tuple(Variant(f"{n}@{f:g}", _http_variant(n, float(f), sweep), requires=needs.get(n, frozenset()),
                                 description=f"{n}, open loop at {f:g} × the best closed-loop capacity",
                                 series=n, x=float(f))
                         for n in sweep for f in params["sweep_fractions"])
        out.append(Case(
            "sweep", {k: params[k] for k in ("users", "burst_s", "warmup_s", "workers", "threads", "django_pool",
                                             "bouncer_pool", "p99_budget_ms")}
            | {"endpoint": "db", "fractions": tuple(params["sweep_fractions"])},
            variants[0].name, variants, (), timing=SelfTimed(rounds=params["sweep_rounds"]), time_label="",
            charts=(SWEEP_P99, SWEEP_SERVED),
            title=f"sweep · /db, latency against offered load (open loop), p99 budget {params['p99_budget_ms']} ms",
            columns=("offered_rps", "rps", "p50_ms", "p95_ms", "p99_ms", "failures", "late", "generator_bound")))
    return out


def setup(ctx: Context) -> Pools:
    from django.db import connection

    from labs.bookstore.seed import seed_techempower

    seed_techempower(ctx.seed)
    with connection.cursor() as cur:
        for role in ROLES:
            urls.ensure_login_role(cur, os.environ["DATABASE_URL"], role)
            cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        cur.execute(f"ALTER ROLE {LIMITED} CONNECTION LIMIT %s" % int(ctx.params["limit"]))
    provided = os.environ.get("PGBOUNCER_URL") if "pgbouncer" in ctx.components else None
    pools = Pools(ctx.artifacts_dir(), ctx.params["bouncer_pool"], provided)
    ctx.on_close(pools.close)
    return pools


def summarize(result) -> list[str]:
    lines = []
    for case in result.cases:
        v = case.variants
        if case.name == "http" and v.get("no_pool") and v["no_pool"].metrics.get("rps"):
            base = v["no_pool"]
            for name, x in v.items():
                if x.metrics.get("rps") and name != "no_pool":
                    lines.append(f"http: {name} served {x.metrics['rps']:.0f} rps vs {base.metrics['rps']:.0f} "
                                 f"without pooling (p95 {x.metrics['p95_ms']:.0f} vs {base.metrics['p95_ms']:.0f} ms) "
                                 f"over {x.metrics['server_conns']} server connections.")
            spr = base.metrics.get("sessions_per_request")
            if spr:
                lines.append(f"no_pool opened {spr:.2f} PostgreSQL sessions per request, each costing "
                             f"{base.metrics.get('connect_ms')} ms to connect (median; through PgBouncer "
                             f"{v['pgbouncer_transaction'].metrics.get('connect_ms') if v.get('pgbouncer_transaction') else '–'} ms).")
        if case.name == "sweep":
            lines += sweep_lines(case)
        if case.name == "crowd":
            parts = [f"{n} {x.metrics.get('errors', '?')} errors ({x.metrics.get('error_kinds') or 'none'})"
                     for n, x in v.items() if not x.skipped]
            lines.append(f"crowd of {case.params['clients']} clients over a {case.params['limit']}-connection limit: "
                         + "; ".join(parts) + ".")
    crowd = next((c for c in result.cases if c.name == "crowd"), None)
    demo = crowd and crowd.variants.get("pgbouncer_transaction") and \
        crowd.variants["pgbouncer_transaction"].metrics.get("prepared_statements")
    if demo:
        lines.append("PgBouncer transaction mode: with prepared statements → "
                     f"{demo.get('prepare_threshold=0')}; with prepare_threshold=None → "
                     f"{demo.get('prepare_threshold=None')}.")
    return lines


SCENARIO = Scenario(
    name="pooling",
    title="Connection pooling: none, persistent, Django's pool, PgBouncer",
    requires=frozenset({"postgres"}),
    optional=frozenset({"pgbouncer", "pgbouncer_local"}),
    profiles={
        "quick": {"users": 16, "burst_s": 1.5, "warmup_s": 0.5, "rounds": 3, "workers": 2, "threads": 4,
                  "django_pool": "1:4:5", "bouncer_pool": 4, "clients": 50, "limit": 20, "hold_ms": 100,
                  "pool_max": 10, "pool_timeout_s": 0.3, "crowd_rounds": 3,
                  "sweep_strategies": ("no_pool", "persistent", "pgbouncer_transaction"),
                  "sweep_fractions": (0.5, 0.8, 1.0, 1.25), "sweep_rounds": 1, "p99_budget_ms": 100},
        "full": {"users": 32, "burst_s": 5.0, "warmup_s": 1.0, "rounds": 5, "workers": 4, "threads": 4,
                 "django_pool": "2:4:5", "bouncer_pool": 8, "clients": 100, "limit": 20, "hold_ms": 200,
                 "pool_max": 10, "pool_timeout_s": 0.5, "crowd_rounds": 5,
                 "sweep_strategies": ("no_pool", "persistent", "django_pool", "pgbouncer_transaction"),
                 "sweep_fractions": (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5), "sweep_rounds": 3, "p99_budget_ms": 100},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(*LOAD_METRICS,
             Metric("connect_ms", "connect", "ms", description="median time to open one connection the way this "
                                                                 "variant's app does"),
             Metric("server_conns", "srv conns", description="most PostgreSQL connections the variant's role held"),
             Metric("sessions_per_request", "sess/req", description="PostgreSQL sessions opened per request"),
             Metric("error_kinds", "error kinds", better=None),
             Metric("bouncer", "PgBouncer", better=None, description="which PgBouncer served the variant"),
             Metric("prepared_statements", "prepared statements", better=None)),
    processes={"quick": 1, "full": 1},
)
