"""Load scenarios' machinery: real Gunicorn servers driven by bounded load bursts.

A `Rig` holds what a whole run of a load scenario shares — one server per configuration (kept up
across interleaved rounds) and one load generator — and is closed by the scenario's setup
context. `load_variant` is a variant factory: its verified pass checks the server's answers, its
timed unit is one burst (self-timed: seconds per request), closed loop (`users`) or open loop
(`rate`: a fixed offered rate, latency from each request's intended send time — see
harness.measure.latency). `LOAD_METRICS` declares what a burst reports; `summarize_bursts` merges
the bursts' HDR histograms before taking percentiles and keeps each burst's histogram (encoded)
so `labs compare` can bootstrap p95/p99 over bursts.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import StackError
from harness.measure.contract import BarsChart, Context, Metric
from harness.measure.http import Server, ServerConfig
from harness.measure.loadgen import LoadGenerator

GENERATOR_BOUND = 0.8
"""Generator CPU (fraction of one core) above which its numbers are suspect."""

LOAD_METRICS = (
    Metric("rps", "rps", "req/s", better="higher", kind="statistical", description="requests per second"),
    Metric("p50_ms", "p50", "ms", kind="statistical"),
    Metric("p95_ms", "p95", "ms", kind="statistical"),
    Metric("p99_ms", "p99", "ms", kind="statistical"),
    Metric("p99_9_ms", "p99.9", "ms", kind="statistical"),
    Metric("offered_rps", "offered", "req/s", better=None,
           description="open loop: the rate requests were scheduled at, whatever the server did"),
    Metric("late", "late sends", description="open loop: requests the generator sent over 10 ms after their "
                                             "intended time (it could not keep the schedule)"),
    Metric("latency_hdr", "latency histograms", better=None,
           description="each burst's HDR histogram of latencies (µs, encoded): compare bootstraps percentiles "
                       "over them"),
    Metric("requests", "requests"),
    Metric("failures", "fail", kind="exact", description="failed requests (every one is a verdict)"),
    Metric("error_rate", "err rate", percent=True),
    Metric("server_cpu", "srv CPU", "cores", description="server CPU per second of burst"),
    Metric("generator_cpu", "gen CPU", "cores", description="load generator CPU per second of burst"),
    Metric("generator_bound", "gen-bound", better=None,
           description=f"yes when the generator used over {GENERATOR_BOUND:.0%} of a core"),
    Metric("worker_restarts", "restarts", description="worker processes replaced during the run"),
    Metric("boot_s", "boot s", "s"),
    Metric("errors", "errors", better=None),
)
LATENCY_CHART = BarsChart(("p50_ms", "p95_ms", "p99_ms"), y_label="latency, ms", title="latency percentiles")


class Rig:
    """Servers (one per configuration) and one load generator shared by a run; `close()` stops them."""

    def __init__(self, artifacts: Path, app_env: dict[str, str] | None = None, generators: int = 1) -> None:
        self.artifacts = artifacts
        self.app_env = dict(app_env or {})
        self.generators = generators
        self.servers: dict[str, Server] = {}
        self._gen: LoadGenerator | None = None
        self.capacity: dict[tuple, float] = {}
        """Closed-loop throughput measured once per configuration and paths (open-loop yardsticks)."""

    def server(self, config: ServerConfig) -> Server:
        server = self.servers.get(config.name)
        if server is None or not server.alive():
            server = Server(config, self.artifacts, self.app_env)
            self.servers[config.name] = server
            server.start()
        return server

    def loadgen(self) -> LoadGenerator:
        if self._gen is None:
            # more than one generator process spreads Locust over cores (like `locust --processes N`);
            # on 2 cores shared with the server, 1 is the honest default
            self._gen = LoadGenerator(self.artifacts / "locust.log", self.generators)
        return self._gen

    def close(self) -> None:
        try:
            for server in self.servers.values():
                server.stop()
        finally:
            self.servers.clear()
            if self._gen is not None:
                self._gen.close()
                self._gen = None


def load_variant(config: ServerConfig, paths: list[tuple[str, int]],
                 verify_fn: Callable[[str], Any] | None = None,
                 rate: float | Callable[..., float] | None = None):
    """A variant that serves `paths` with a real Gunicorn (from the run's Rig, `ctx.shared`) and
    samples it with load bursts (self-timed: seconds per request). Its verified pass runs
    `verify_fn(url)` (default: the TechEmpower-style verification). Closed loop with the case's
    `users`, unless open loop: `rate` (requests per second, or `rate(rig, server, paths, ctx)`
    deciding it once before the first burst), else the case's mode=open and rate params."""
    from harness.measure.http import verify

    def make(ctx: Context):
        rig: Rig = ctx.shared
        server = rig.server(config)
        if ctx.counting:
            ctx.metrics["boot_s"] = round(server.boot_s, 3)
            return lambda: (verify_fn or verify)(server.url)
        p = ctx.params
        gen = rig.loadgen()
        offered = rate(rig, server, paths, ctx) if callable(rate) else rate if rate is not None else load_rate(p)
        gen.burst(server.url, paths, p["users"], p["warmup_s"], rate=offered)  # warm-up, discarded
        bursts: list[dict[str, Any]] = []
        pids_seen: set[int] = set(server.worker_pids())

        def unit() -> float:
            cpu0 = server.cpu_s()
            b = gen.burst(server.url, paths, p["users"], p["burst_s"], p["max_requests_per_burst"], rate=offered)
            if not server.alive():  # a dead server is a stack failure, not a slow variant
                raise StackError(f"gunicorn ({config.name}) died during the run; its log: {server.log_path}")
            b["server_cpu"] = round((server.cpu_s() - cpu0) / b["duration_s"], 3) if b["duration_s"] else 0.0
            pids_seen.update(server.worker_pids())
            bursts.append(b)
            if not b["requests"]:
                return b["duration_s"] * 1000  # nothing got through: a huge sample, and failures say why
            return b["duration_s"] / b["requests"]

        @ctx.on_close
        def close() -> None:
            if not bursts:
                return
            m = ctx.metrics
            m.update(summarize_bursts(bursts, "server_cpu"))
            m["generator_bound"] = generator_bound(m)
            m["worker_restarts"] = max(0, len(pids_seen) - config.workers)
            errors: dict[str, int] = {}
            for b in bursts:
                for k, v in b["errors"].items():
                    errors[k] = errors.get(k, 0) + v
            if errors:
                m["errors"] = errors
        return unit
    return make


def load_rate(params: dict[str, Any]) -> float | None:
    """The offered rate of an open-loop variant (params mode=open, rate=N req/s); None: closed loop."""
    if str(params.get("mode", "closed")) != "open":
        return None
    rate = float(params.get("rate") or 0)
    if rate <= 0:
        raise ValueError("an open-loop load needs a rate > 0 requests per second (--param rate=200)")
    return rate


def generator_bound(m: dict[str, Any]) -> str:
    """'yes' when one generator process was near a full core, or an open loop could not keep its
    schedule (over 1 % of its requests went out late): its numbers then measure the generator."""
    cpu = m.get("generator_cpu_max", m.get("generator_cpu")) or 0
    late = (m.get("late") or 0) / max(1, m.get("requests") or 0)
    return "yes" if cpu > GENERATOR_BOUND or late > 0.01 else "no"


def summarize_bursts(bursts: list[dict], *extra: str) -> dict:
    """What a variant's measured bursts saw: percentiles of all its requests (the bursts' HDR
    histograms merged, exactly: never a median of per-burst percentiles), the median burst's
    throughput (and of `extra` keys the scenario added), totals, the error rate, and each burst's
    histogram for the percentile intervals of `labs compare`."""
    from harness.measure import latency

    def med(key: str):
        values = [b[key] for b in bursts if b.get(key) is not None]
        return round(statistics.median(values), 3) if values else None
    out = {key: med(key) for key in ("rps", "generator_cpu", *extra)}
    out["generator_cpu_max"] = max((b.get("generator_cpu_max", b.get("generator_cpu")) or 0 for b in bursts),
                                   default=0.0)
    encoded = [b.get("hdr") or "" for b in bursts]
    out.update(latency.percentiles_ms(latency.merge(encoded)))
    if any(encoded):
        out["latency_hdr"] = encoded
    out["requests"] = sum(b["requests"] for b in bursts)
    out["failures"] = sum(b["failures"] for b in bursts)
    out["error_rate"] = round(out["failures"] / out["requests"], 4) if out["requests"] else 1.0
    late = sum(b.get("late") or 0 for b in bursts)
    offered = [b["offered_rps"] for b in bursts if b.get("offered_rps")]
    if offered:
        out["offered_rps"] = round(statistics.median(offered), 2)
        out["late"] = late
    return out
