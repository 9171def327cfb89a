"""Async views: where they help (waiting on an upstream) and where the sync ORM bridge costs.

A sync view under WSGI (Gunicorn gthread) against an async view under ASGI (Uvicorn worker),
for an endpoint that awaits an upstream service (a real local server that answers after a
fixed delay) and for one that uses the ORM (`aget` vs `sync_to_async` vs a plain sync view).
Real Gunicorn, real Locust bursts, interleaved (harness.measure.load is the machinery).
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.measure.http import ServerConfig, db_answers, get
from harness.measure.load import LATENCY_CHART, LOAD_METRICS, Rig, load_variant
from harness.measure import upstream
from harness.measure.upstream import BODY as UPSTREAM_BODY
from harness.scenario import Case, Check, Context, Scenario, SelfTimed, Variant, metric_check, same_result_as

WSGI = ServerConfig("wsgi_gthread", "gthread", 2, threads=4)
ASGI = ServerConfig("asgi_uvicorn", "uvicorn_worker.UvicornWorker", 2, asgi=True)


def _verify(paths: list[str]):
    """What the endpoint answered, checked for its values: the ORM row against the World table;
    the upstream's payload length against what the stand-in sends."""
    def fn(url: str) -> dict:
        facts = {}
        for path in paths:
            kind = path.split("/")[1]
            if kind == "orm":
                facts[kind] = db_answers(url, path, requests=5)
            else:
                answers = []
                for _ in range(3):
                    status, headers, body = get(url + path, 10)
                    answers.append((status, headers.get("content-type"), json.loads(body) if status == 200 else None))
                facts[kind] = tuple(sorted(set(map(json.dumps, answers))))
        return facts
    return fn


def answers_right(variant: str) -> Check:
    """The ORM answers are the database's rows; the upstream answers say the stand-in's payload
    length (a 200 with a wrong body is still wrong)."""
    def fn(runs):
        facts = runs[variant].results[0]
        if "orm" in facts:
            statuses, rows, wrong = facts["orm"]
            return tuple(statuses) == (200,) and rows and wrong == 0, f"{rows} ORM rows checked: {wrong} wrong"
        want = json.dumps([200, "application/json", {"upstream": len(UPSTREAM_BODY)}])
        got = facts["upstream"]
        return got == (want,), f"upstream answers {list(got)} (expected {want})"
    return Check("answers are right", variant, fn)


def _variant(config: ServerConfig, path: str) -> Variant:
    return Variant(f"{'wsgi' if not config.asgi else 'asgi'}_{path.split('/', 2)[2]}",
                   load_variant(config, [(path, 1)], _verify([path])),
                   f"{config.describe()} → {path}")


def setup(ctx: Context) -> Rig:
    """Seed, start the upstream stand-in (stopped with the run), and a Rig whose servers know it."""
    from labs.bookstore.seed import seed_techempower

    seed_techempower(ctx.seed)
    url, stop = upstream.start(ctx.artifacts_dir(), ctx.params["upstream_ms"])
    ctx.on_close(stop)
    rig = Rig(ctx.artifacts_dir(), {"LABS_CONN_MAX_AGE": "0", "LABS_UPSTREAM_URL": url})
    ctx.on_close(rig.close)
    return rig


def cases(params) -> list[Case]:
    load = {k: params[k] for k in ("users", "burst_s", "warmup_s", "max_requests_per_burst")}
    out = []
    for name, variants in (
        ("upstream", (_variant(WSGI, "/upstream/sync"), _variant(ASGI, "/upstream/async"),
                      _variant(ASGI, "/upstream/sync"))),
        ("orm", (_variant(WSGI, "/orm/sync"), _variant(ASGI, "/orm/async"), _variant(ASGI, "/orm/sync_to_async"),
                 _variant(ASGI, "/orm/sync"))),
    ):
        base = variants[0].name
        checks = [same_result_as(v.name, base) for v in variants[1:]] + [answers_right(v.name) for v in variants]
        checks += [metric_check(v.name, "failures", lambda x: x == 0, "== 0") for v in variants]
        out.append(Case(name, {**load, "endpoint": name}, base, variants, tuple(checks),
                        timing=SelfTimed(rounds=params["rounds"]), time_label="", charts=(LATENCY_CHART,),
                        title=f"{name} · {params['users']} users · upstream waits {params['upstream_ms']} ms · "
                              f"WSGI gthread 2×4 vs ASGI Uvicorn ×2",
                        columns=("rps", "p50_ms", "p95_ms", "failures", "server_cpu", "generator_cpu")))
    return out


def summarize(result) -> list[str]:
    lines = []
    for case in result.cases:
        measured = {n: v for n, v in case.variants.items() if v.metrics.get("rps")}
        if not measured:
            continue
        parts = [f"{n} {v.metrics['rps']:.0f} rps (p95 {v.metrics['p95_ms']:.0f} ms)" for n, v in measured.items()]
        lines.append(f"{case.name}: " + "; ".join(parts) + ".")
    up = next((c for c in result.cases if c.name == "upstream"), None)
    if up and all(up.variants.get(n) and up.variants[n].metrics.get("rps") for n in ("wsgi_sync", "asgi_async")):
        a, w = up.variants["asgi_async"].metrics, up.variants["wsgi_sync"].metrics
        lines.append(f"Waiting on the upstream, the async view served {a['rps'] / w['rps']:.1f}× the requests of 8 "
                     f"WSGI threads, p95 {a['p95_ms']:.0f} vs {w['p95_ms']:.0f} ms.")
        s = up.variants.get("asgi_sync")
        if s and s.metrics.get("rps"):
            lines.append(f"A sync view under ASGI (run in a thread pool) served {s.metrics['rps'] / w['rps']:.1f}× the "
                         f"requests of WSGI: {s.metrics['rps']:.0f} vs {a['rps']:.0f} rps for the async view.")
    orm = next((c for c in result.cases if c.name == "orm"), None)
    if orm:
        measured = {n: v.metrics["rps"] for n, v in orm.variants.items() if v.metrics.get("rps")}
        base = measured.get("wsgi_sync")
        if base:
            lines.append("On the ORM (a sync driver underneath), relative to the WSGI sync view: " + ", ".join(
                f"{n} {rps / base:.2f}×" for n, rps in measured.items() if n != "wsgi_sync") + " its requests per second.")
    return lines


SCENARIO = Scenario(
    name="async_views",
    title="Async views: where ASGI helps and where the sync ORM bridge costs",
    requires=frozenset({"postgres"}),
    profiles={
        "quick": {"users": 32, "burst_s": 1.5, "warmup_s": 0.5, "rounds": 3, "upstream_ms": 50,
                  "max_requests_per_burst": 200_000},
        "full": {"users": 100, "burst_s": 5.0, "warmup_s": 1.0, "rounds": 5, "upstream_ms": 50,
                 "max_requests_per_burst": 1_000_000},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=LOAD_METRICS,
    processes={"quick": 1, "full": 1},
)
