"""Gunicorn worker tuning under real HTTP load (Gunicorn + Locust, both real, on loopback).

Each variant is a Gunicorn configuration serving the lab app. Before any load, every server is
verified like TechEmpower's verify mode (status, content type, JSON shape, row counts, the
`queries` clamp, fortunes escaping). Then, per endpoint, Locust bursts (bounded in time and
requests) hit each server in interleaved rounds; a sample is seconds per request of one burst,
so "× faster" is throughput relative to the baseline. Latency percentiles, failures and the CPU
used by the server and by the load generator are kept per variant. The generator shares the
machine's cores with the server: a variant whose generator used most of a core is flagged
"generator-bound" — do not trust its throughput blindly.
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path

from harness.measure.http import EXPECTED_FACTS, Server, ServerConfig
from harness.measure.load import LATENCY_CHART, LOAD_METRICS, Rig, load_variant
from harness.measure.sweep import SWEEP_P99, SWEEP_SERVED, matched_rate, sweep_lines, sweep_rate
from harness.scenario import (
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

CORES = os.cpu_count() or 1
ENDPOINTS = {
    "json": [("/json", 1)],
    "db": [("/db", 1)],
    "queries": [("/queries?queries=20", 1)],
    "fortunes": [("/fortunes", 1)],
    "cpu": [("/cpu", 1)],
    "io": [("/io", 1)],
}
def configs(params) -> dict[str, ServerConfig]:
    out: dict[str, ServerConfig] = {}
    for spec in params["configs"]:
        kind, _, size = spec.partition("_")
        if kind == "sync":
            n = 2 * CORES + 1 if size == "2c1" else int(size)
            out[f"sync_{n}"] = ServerConfig(f"sync_{n}", "sync", n)
        elif kind == "gthread":
            w, t = (int(x) for x in size.split("x"))
            out[spec] = ServerConfig(spec, "gthread", w, threads=t)
        elif kind == "gevent":
            out[spec] = ServerConfig(spec, "gevent", int(size))
        elif kind == "asgi":
            out[spec] = ServerConfig(spec, "asgi", int(size), asgi=True)
        elif kind == "uvicorn":
            out[spec] = ServerConfig(spec, "uvicorn_worker.UvicornWorker", int(size), asgi=True)
        elif kind == "maxreq":
            out[spec] = ServerConfig(spec, "sync", int(size), max_requests=params["max_requests"],
                                     max_requests_jitter=params["max_requests"] // 5)
        else:
            raise ValueError(f"unknown server config {spec!r}")
    return out


APP_ENV = {"LABS_CONN_MAX_AGE": "0"}
"""Django's default: a connection per request. Every variant's server stays up for the whole run
(interleaved rounds), so persistent connections of ~8 servers × workers × threads would pile
up against max_connections; the pooling scenario is where connection reuse is measured."""


# -- variants -------------------------------------------------------------------------------------
def _paths(endpoint: str, config: ServerConfig) -> list[tuple[str, int]]:
    if config.asgi and endpoint == "io":
        return [("/aio", 1)]  # the async view: waiting does not hold a worker
    return ENDPOINTS[endpoint]


def _load_variant(config: ServerConfig, endpoint: str):
    return load_variant(config, _paths(endpoint, config))


CO_FRACTION = 0.9
"""The open loop offers this fraction of what the closed loop served on the same server."""


def _boot_variant(config: ServerConfig):
    """Self-timed: boot a fresh server, wait until every worker answers, weigh it, stop it."""
    def make(ctx: Context):
        mem: list[dict[str, float]] = []

        def unit() -> float:
            server = Server(config, ctx.artifacts_dir(), APP_ENV)
            try:
                boot = server.start()
                mem.append(server.memory())
                return boot
            finally:
                server.stop()

        @ctx.on_close
        def close() -> None:
            if mem:
                ctx.metrics.update(uss_mib=statistics.median(m["uss_mib"] for m in mem),
                                   pss_mib=statistics.median(m["pss_mib"] for m in mem))
        if ctx.counting:
            return lambda: (unit(), "booted")[1]
        return unit
    return make


def _facts_check(baseline: str) -> Check:
    def fn(runs):
        facts = runs[baseline].results[0]
        bad = [k for k, want in EXPECTED_FACTS.items() if facts.get(k) != want]
        bad += [k for k, v in facts.items() if k.startswith("queries=") and not (v[0] == 200 and all(v[2:]))]
        bad += [k for k in ("db", "/cpu", "/io") if facts[k][0] != 200 or facts[k][1] != "application/json"]
        bad += ["db rows" for _ in [0] if not facts["db"][-1]]
        return not bad, "endpoints verified (status, content type, shape, rows against the database, queries " \
                        "clamp, escaping)" if not bad else f"failed: {', '.join(bad)}"
    return Check("TechEmpower-style verification", baseline, fn)


def cases(params) -> list[Case]:
    servers = configs(params)
    baseline = next(iter(servers))
    out = []
    for endpoint in params["endpoints"]:
        variants = tuple(Variant(name, _load_variant(cfg, endpoint), cfg.describe()) for name, cfg in servers.items())
        checks = [_facts_check(baseline)]
        checks += [same_result_as(name, baseline) for name in servers if name != baseline]
        checks += [metric_check(name, "failures", lambda v: v == 0, "== 0 (failed requests are not averaged in)")
                   for name in servers]
        out.append(Case(
            endpoint, {"endpoint": endpoint, "users": params["users"], "burst_s": params["burst_s"],
                       "warmup_s": params["warmup_s"], "max_requests_per_burst": params["max_requests_per_burst"],
                       "generators": params["generators"]},
            baseline, variants, tuple(checks), timing=SelfTimed(rounds=params["rounds"]), charts=(LATENCY_CHART,),
            title=f"/{endpoint} · {params['users']} users · {params['rounds']}×{params['burst_s']} s bursts · "
                  f"{CORES} cores shared by server and load generator",
            columns=("rps", "p50_ms", "p95_ms", "p99_ms", "failures", "server_cpu", "generator_cpu",
                     "worker_restarts"), time_label=""))
    if params.get("co_config"):
        out.append(_co_case(params))
    if params.get("sweep_configs"):
        out.append(_sweep_case(params))
    boot = {"preload_off": ServerConfig("preload_off", "sync", params["preload_workers"]),
            "preload_on": ServerConfig("preload_on", "sync", params["preload_workers"], preload=True)}
    out.append(Case(
        "boot", {"workers": params["preload_workers"]}, "preload_off",
        tuple(Variant(n, _boot_variant(c), c.describe()) for n, c in boot.items()), (),
        timing=SelfTimed(rounds=params["boot_rounds"]),
        title=f"boot-to-ready and memory of {params['preload_workers']} sync workers, --preload off vs on",
        columns=("uss_mib", "pss_mib"), time_label="boot s"))
    return out


def _co_case(params) -> Case:
    """One server, two ways of loading it: closed loop (users waiting for their answers) and open
    loop at 90 % of what the closed loop served (requests on schedule, latency from when each
    should have been sent). Same server, nearly the same throughput: the p99 each reports."""
    cfg = configs({**params, "configs": (params["co_config"],)})[params["co_config"]]
    paths = _paths(params["co_endpoint"], cfg)
    variants = (Variant("closed_loop", load_variant(cfg, paths), f"{params['users']} users, no wait ({cfg.name})"),
                Variant("open_loop", load_variant(cfg, paths, rate=matched_rate(CO_FRACTION)),
                        f"fixed schedule at {CO_FRACTION:.0%} of the closed loop's throughput ({cfg.name})"))
    return Case(
        "closed_vs_open", {"endpoint": params["co_endpoint"], "config": cfg.name, "users": params["users"],
                           "burst_s": params["burst_s"], "warmup_s": params["warmup_s"],
                           "max_requests_per_burst": params["max_requests_per_burst"]},
        "closed_loop", variants,
        (metric_check("closed_loop", "failures", lambda v: v == 0, "== 0"),),
        timing=SelfTimed(rounds=params["rounds"]), charts=(LATENCY_CHART,),
        title=f"/{params['co_endpoint']} on {cfg.name}: closed loop vs open loop (coordinated omission)",
        columns=("rps", "offered_rps", "p50_ms", "p99_ms", "p99_9_ms", "failures", "late", "generator_cpu"),
        time_label="")


def _sweep_case(params) -> Case:
    """Latency against offered load: each configuration at the same grid of open-loop rates
    (fractions of the best closed-loop capacity among them), p50/p95/p99 and failures per step."""
    chosen = configs({**params, "configs": params["sweep_configs"]})
    servers = [(cfg, _paths(params["sweep_endpoint"], cfg)) for cfg in chosen.values()]

    def yardstick(ctx):
        return servers
    variants = []
    for name, cfg in chosen.items():
        for fraction in params["sweep_fractions"]:
            variants.append(Variant(f"{name}@{fraction:g}", load_variant(
                cfg, _paths(params["sweep_endpoint"], cfg), rate=sweep_rate(float(fraction), yardstick)),
                f"{name}, open loop at {fraction:g} × the best closed-loop capacity", series=name, x=float(fraction)))
    return Case(
        "sweep", {"endpoint": params["sweep_endpoint"], "users": params["users"], "burst_s": params["burst_s"],
                  "warmup_s": params["warmup_s"], "max_requests_per_burst": params["max_requests_per_burst"],
                  "fractions": tuple(params["sweep_fractions"]), "p99_budget_ms": params["p99_budget_ms"]},
        variants[0].name, tuple(variants), (),
        timing=SelfTimed(rounds=params["sweep_rounds"]), charts=(SWEEP_P99, SWEEP_SERVED),
        title=f"/{params['sweep_endpoint']}: latency against offered load (open loop), p99 budget "
              f"{params['p99_budget_ms']} ms",
        columns=("offered_rps", "rps", "p50_ms", "p95_ms", "p99_ms", "failures", "late", "generator_bound"),
        time_label="")


def setup(ctx: Context) -> Rig:
    """Seed the TechEmpower tables; the run's servers and load generator live in the Rig."""
    from labs.bookstore.seed import seed_techempower

    seed_techempower(ctx.seed)
    rig = Rig(ctx.artifacts_dir(), APP_ENV, int(ctx.params.get("generators", 1)))
    ctx.on_close(rig.close)
    return rig


def _co_line(case) -> str | None:
    closed, opened = case.variants.get("closed_loop"), case.variants.get("open_loop")
    if not (closed and opened and closed.metrics.get("p99_ms") and opened.metrics.get("p99_ms")):
        return None
    c, o = closed.metrics, opened.metrics
    ratio = o["p99_ms"] / c["p99_ms"]
    if ratio >= 1.1:
        verb = f"{ratio:.1f}× the p99 the closed loop reported"
    elif ratio > 0.9:
        verb = (f"about the same p99 ({ratio:.2f}×): at this load the server never stalled long enough for the "
                "closed loop to hide it")
    else:
        verb = (f"{1 / ratio:.1f}× lower than the closed loop's: below saturation requests queued less than "
                f"behind {case.params.get('users')} users who always have one outstanding, and no stall was long "
                "enough for the closed loop to hide it")
    return (f"Coordinated omission on {case.params.get('config')}: the closed loop ({case.params.get('users')} users) "
            f"served {c['rps']:.0f} req/s with p99 {c['p99_ms']:.1f} ms; the open loop offered "
            f"{o.get('offered_rps') or 0:.0f} req/s ({CO_FRACTION:.0%} of that) on the same server and measured "
            f"p99 {o['p99_ms']:.1f} ms, counted from each request's intended send time — {verb}."
            + (f" The generator sent {o['late']} requests late: its own numbers are suspect."
               if (o.get("late") or 0) > 0.01 * max(1, o.get("requests") or 0) else ""))


def summarize(result) -> list[str]:
    lines = []
    for case in result.cases:
        if case.name == "closed_vs_open":
            line = _co_line(case)
            lines += [line] if line else []
            continue
        if case.name == "sweep":
            lines += sweep_lines(case)
            continue
        measured = [v for v in case.variants.values() if v.metrics.get("rps")]
        if measured:
            fastest = max(measured, key=lambda v: v.metrics["rps"])
            best_p95 = min(measured, key=lambda v: v.metrics.get("p95_ms") or 1e9)
            slowest = min(measured, key=lambda v: v.metrics["rps"])
            line = (f"/{case.name}: {fastest.name} served the most ({fastest.metrics['rps']:.0f} rps, "
                    f"p95 {fastest.metrics['p95_ms']:.0f} ms); best p95 {best_p95.name} "
                    f"({best_p95.metrics['p95_ms']:.0f} ms); {slowest.name} the least "
                    f"({slowest.metrics['rps']:.0f} rps).")
            suspect = [v.name for v in measured if v.metrics.get("generator_bound") == "yes"]
            if suspect:
                line += f" Generator-bound (numbers capped by the load generator): {', '.join(suspect)}."
            lines.append(line)
        elif case.name == "boot":
            off, on = case.variants.get("preload_off"), case.variants.get("preload_on")
            if off and on and off.metrics.get("pss_mib") and on.metrics.get("pss_mib"):
                lines.append(f"--preload: worker set PSS {on.metrics['pss_mib']:.0f} MiB vs "
                             f"{off.metrics['pss_mib']:.0f} MiB without; boot-to-ready {on.median_s:.2f} s vs "
                             f"{off.median_s:.2f} s.")
    lines.append(f"The load generator and the server shared {CORES} cores: throughput is a comparison "
                 "between variants of this run, not a capacity figure.")
    return lines


SCENARIO = Scenario(
    name="gunicorn",
    title="Gunicorn worker tuning under real HTTP load (Locust)",
    requires=frozenset({"postgres"}),
    profiles={
        "quick": {"endpoints": ("json", "db", "io"), "users": 20, "burst_s": 1.5, "warmup_s": 0.5, "rounds": 3,
                  "max_requests_per_burst": 200_000, "max_requests": 200, "preload_workers": 4, "boot_rounds": 2,
                  "generators": 1,
                  "configs": ("sync_2", "sync_2c1", "gthread_2x8", "gthread_4x4", "gevent_4", "asgi_2",
                              "uvicorn_2", "maxreq_4"),
                  "co_config": "gthread_2x8", "co_endpoint": "db",
                  "sweep_configs": ("sync_2", "gthread_2x8", "gevent_4"), "sweep_endpoint": "db",
                  "sweep_fractions": (0.25, 0.5, 0.75, 1.0, 1.25), "sweep_rounds": 1, "p99_budget_ms": 100},
        "full": {"endpoints": ("json", "db", "queries", "fortunes", "cpu", "io"), "users": 50, "burst_s": 5.0,
                 "warmup_s": 2.0, "rounds": 5, "max_requests_per_burst": 1_000_000, "max_requests": 1000,
                 "preload_workers": 8, "boot_rounds": 5, "generators": 1,
                 "configs": ("sync_2", "sync_4", "sync_2c1", "gthread_2x4", "gthread_2x8", "gthread_4x4",
                             "gevent_4", "asgi_2", "uvicorn_2", "maxreq_4"),
                 "co_config": "gthread_2x8", "co_endpoint": "db",
                 "sweep_configs": ("sync_2", "sync_2c1", "gthread_2x8", "gevent_4", "uvicorn_2"), "sweep_endpoint": "db",
                 "sweep_fractions": (0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5), "sweep_rounds": 3,
                 "p99_budget_ms": 100},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(*LOAD_METRICS,
             Metric("uss_mib", "USS", "MiB", description="unique memory of the worker set"),
             Metric("pss_mib", "PSS", "MiB", description="proportional memory of the worker set")),
    processes={"quick": 1, "full": 1},
)
