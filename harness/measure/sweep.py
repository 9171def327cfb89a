"""Open-loop rates a load variant is offered, and what a sweep of them shows.

`matched_rate` offers a fraction of what the closed loop served on the same server (the closed vs
open comparison: coordinated omission). A sweep offers every configuration the same grid of
absolute rates — fractions of the best closed-loop `capacity` among them — and `knee` finds, from
the data, the first rate at which a server stopped keeping up. `SWEEP_P99`/`SWEEP_SERVED` are its
pictures; `sweep_lines` its lesson line.
"""
from __future__ import annotations

from collections.abc import Callable

from harness.measure.contract import Context, SeriesChart
from harness.measure.http import ServerConfig
from harness.measure.load import Rig

SWEEP_P99 = SeriesChart("p99_ms", x_label="offered load, req/s", y_label="p99 latency, ms", log_x=False,
                        x_metric="offered_rps")
SWEEP_SERVED = SeriesChart("rps", x_label="offered load, req/s", y_label="served, req/s", log_x=False,
                           x_metric="offered_rps", ideal="x")
"""A sweep's pictures: latency against offered load, and served against offered (y = x while it keeps up)."""


def matched_rate(fraction: float = 0.9):
    """An open-loop rate of `fraction` of what the closed loop (the case's users) serves: a short
    closed burst measures it on the same server just before the variant's first burst."""
    def decide(rig, server, paths, ctx) -> float:
        p = ctx.params
        probe = rig.loadgen().burst(server.url, paths, p["users"], max(0.5, float(p["warmup_s"])))
        return max(1.0, round(fraction * probe["rps"], 1))
    return decide


def capacity(rig: Rig, config: ServerConfig, paths: list[tuple[str, int]], p: dict) -> float:
    """What a server serves closed loop (the case's users, no wait): measured once per run and
    configuration, the yardstick of a sweep's offered rates."""
    key = (config.name, tuple(paths))
    if key not in rig.capacity:
        server, gen = rig.server(config), rig.loadgen()
        gen.burst(server.url, paths, p["users"], float(p["warmup_s"]))
        rig.capacity[key] = gen.burst(server.url, paths, p["users"], max(1.0, float(p["burst_s"])))["rps"]
    return rig.capacity[key]


def sweep_rate(fraction: float, yardstick: Callable[[Context], list[tuple[ServerConfig, list]]]):
    """An open-loop rate of `fraction` × the highest closed-loop capacity among the sweep's servers
    (`yardstick(ctx)`: their configurations and paths): one grid of absolute rates for all of
    them, so their knees compare."""
    def decide(rig, server, paths, ctx) -> float:
        top = max(capacity(rig, cfg, pth, ctx.params) for cfg, pth in yardstick(ctx))
        return max(1.0, round(fraction * top, 1))
    return decide


def knee(points: list[tuple[float, dict]], budget_ms: float) -> tuple[float | None, str]:
    """The first offered rate (ascending) at which the server stopped keeping up: served under
    90 % of offered, any failed request, or p99 over the budget. (None, why) when it never did."""
    for offered, m in sorted(points, key=lambda x: x[0]):
        served, p99, failed = m.get("rps") or 0.0, m.get("p99_ms"), m.get("failures") or 0
        if failed:
            return offered, f"{failed} failed requests"
        if served < 0.9 * offered:
            return offered, f"served {served:.0f} of {offered:.0f} req/s offered"
        if p99 is not None and p99 > budget_ms:
            return offered, f"p99 {p99:.0f} ms over the {budget_ms:.0f} ms budget"
    return None, "kept up at every offered rate"


def sweep_lines(case) -> list[str]:
    """The lesson's line for a sweep case: each series' knee, from its own numbers."""
    budget = float(case.params.get("p99_budget_ms") or 100)
    series: dict[str, list[tuple[float, dict]]] = {}
    for v in case.variants.values():
        if v.series and v.metrics.get("offered_rps"):
            series.setdefault(v.series, []).append((v.metrics["offered_rps"], v.metrics))
    parts = []
    for name, points in series.items():
        at, why = knee(points, budget)
        kept = [o for o, _m in points if at is None or o < at]
        text = (f"{name} knee at {at:.0f} req/s ({why})" if at is not None else
                f"{name} no knee up to {max(o for o, _m in points):.0f} req/s ({why})")
        if at is not None and kept:
            text += f", kept up to {max(kept):.0f}"
        parts.append(text)
    if not parts:
        return []
    return [f"Latency against offered load on /{case.params.get('endpoint', 'db')}: " + "; ".join(parts) + "."]
