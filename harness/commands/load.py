"""labs load URL · labs locust-worker: the lab's load measurement against a server you name, and
extra generator machines for it."""
from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Annotated, Optional

import typer

from harness.commands.console import err, out
from harness.errors import EXIT_CHECK_FAILED, EXIT_OK, Interrupted, UsageError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_BURST_S = 600.0
MAX_BURSTS = 100
MAX_RATE = 100_000


def load_cmd(
    url: Annotated[str, typer.Argument(help="The server to load: http(s)://HOST[:PORT]/PATH.", show_default=False)],
    rate: Annotated[Optional[float], typer.Option(help="Open loop: requests per second, sent on schedule "
                                                       "whatever the server does (omit for closed loop).")] = None,
    users: Annotated[int, typer.Option(help="Closed loop: users sending as fast as they are answered.",
                                       min=1)] = 20,
    duration: Annotated[float, typer.Option(help="Seconds per burst.", min=0.1)] = 5.0,
    bursts: Annotated[int, typer.Option(help="Measured bursts (after one warm-up burst).", min=1)] = 3,
    path: Annotated[Optional[list[str]], typer.Option("--path", help="More paths of the same server, "
                                                                     "weighted equally (repeatable).")] = None,
    processes: Annotated[int, typer.Option(help="Generator processes on this machine (a Locust master "
                                                "with this many workers when > 1).", min=1)] = 1,
    remote_workers: Annotated[int, typer.Option(help="Wait for this many `labs locust-worker` processes "
                                                     "from other machines.", min=0)] = 0,
    master_port: Annotated[int, typer.Option(help="Port of the Locust master (with --remote-workers).")] = 5557,
    max_requests: Annotated[int, typer.Option(help="Stop a burst after this many requests.", min=1)] = 1_000_000,
    i_own_this_target: Annotated[bool, typer.Option("--i-own-this-target",
                                                    help="Required for a target that is not on loopback: "
                                                         "load only servers you run.")] = False,
    results_dir: Annotated[Path, typer.Option(help="Where the result file goes.")] = Path("results"),
) -> None:
    """Measure a server you run (your staging app) the way the lab's load scenarios do: bounded
    bursts, open loop at a fixed rate (or closed loop), exact HDR latency percentiles; the result is
    stored like any scenario's, so `labs compare` and `labs history` work on it."""
    from harness.measure.load import LOAD_METRICS, generator_bound, summarize_bursts
    from harness.measure.loadgen import LoadGenerator
    from harness.results import store
    from harness.stack.urls import redact_target

    shown = redact_target(url)  # what is printed and stored: no userinfo, no token values
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a garbled authority
    except ValueError as exc:
        raise UsageError(f"not a URL the lab can load: {shown!r} ({exc})",
                         hint="labs load http://127.0.0.1:8000/ --rate 50") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsageError(f"not a URL the lab can load: {shown!r}", hint="labs load http://127.0.0.1:8000/ --rate 50")
    remote = parts.hostname not in LOOPBACK
    if remote and not i_own_this_target:
        raise UsageError(f"{parts.hostname} is not on this machine: loading a server is an attack unless it is yours",
                         hint=f"if you run {parts.hostname}, say so: labs load {shown} --i-own-this-target")
    if rate is not None and not 0 < rate <= MAX_RATE:
        raise UsageError(f"--rate must be between 0 and {MAX_RATE:,} requests per second (got {rate:g})",
                         hint="omit --rate for a closed loop; one machine's generator tops out far below this")
    if duration > MAX_BURST_S or bursts > MAX_BURSTS:
        raise UsageError(f"at most {MAX_BURSTS} bursts of {MAX_BURST_S:.0f} s", hint="labs load URL --duration 10")
    host = f"{parts.scheme}://{parts.netloc}"
    paths = [(parts.path or "/") + (f"?{parts.query}" if parts.query else ""), *(path or [])]
    weighted = [(p if p.startswith("/") else "/" + p, 1) for p in paths]
    mode = f"open loop at {rate:g} req/s" if rate else f"closed loop, {users} users"
    more = f" + {len(weighted) - 1} more paths" if len(weighted) > 1 else ""
    err.print(f"[dim]{shown}{more} · {mode} · {bursts}×{duration:g} s[/dim]", highlight=False)

    started = dt.datetime.now(dt.timezone.utc)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-load-{time.time_ns() % 65536:04x}"
    log = results_dir / "load" / f"{run_id}.log"
    gen = LoadGenerator(log, processes, allow_remote=remote, remote_workers=remote_workers,
                        master_bind="0.0.0.0" if remote_workers else "127.0.0.1", master_port=master_port)
    measured: list[dict] = []
    reason = None
    try:
        with err.status("warming up…") as status:
            gen.burst(host, weighted, users, min(duration, 2.0), max_requests, rate=rate)
            for i in range(bursts):
                status.update(f"burst {i + 1}/{bursts}…")
                b = gen.burst(host, weighted, users, duration, max_requests, rate=rate)
                measured.append(b)
                err.print(f"  burst {i + 1}: {b['requests']} requests, {b['rps']:.0f} req/s, p99 "
                          f"{b.get('p99_ms') or 0:.1f} ms, {b['failures']} failed", highlight=False)
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        gen.close()
    result = _result(run_id, started, shown, rate, users, duration, bursts, measured, reason,
                     summarize_bursts(measured) if measured else {}, LOAD_METRICS, generator_bound)
    saved = store.save(result, results_dir)
    _show(result)
    out.print(f"saved {saved}", soft_wrap=True, highlight=False)
    if reason:
        raise Interrupted("the load stopped; the bursts measured so far are saved, marked incomplete")
    failed = result.cases[0].variants["target"].metrics.get("failures")
    raise typer.Exit(EXIT_CHECK_FAILED if failed else EXIT_OK)


def _result(run_id, started, url, rate, users, duration, bursts, measured, reason, metrics, declared, bound):
    from harness.project import envinfo
    from harness.results.model import CaseResult, CheckOutcome, Result, VariantResult

    samples = tuple(b["duration_s"] / b["requests"] for b in measured if b["requests"])
    if metrics:
        metrics["generator_bound"] = bound(metrics)
    variant = VariantResult("target", samples, 1, statistics.median(samples) if samples else None,
                            metrics=metrics, description=url)
    failures = metrics.get("failures", 0)
    check = CheckOutcome("no failed requests", "target", not failures,
                         f"{failures} of {metrics.get('requests', 0)} requests failed" if failures else "0 failed")
    params = {"url": url, "mode": "open" if rate else "closed", "rate": rate, "users": None if rate else users,
              "burst_s": duration, "bursts": bursts}
    case = CaseResult("target", params, "target", {"target": variant}, (check,), rounds=len(measured),
                      title=f"{url} · " + (f"open loop {rate:g} req/s" if rate else f"closed loop {users} users"),
                      columns=("rps", "offered_rps", "p50_ms", "p95_ms", "p99_ms", "p99_9_ms", "failures",
                               "generator_cpu", "generator_bound"),
                      time_label="", timing={"mode": "self_timed", "statistic": "median_ratio"})
    finished = dt.datetime.now(dt.timezone.utc)
    return Result("load", run_id, "load", reason is None and len(measured) == bursts, started.isoformat(),
                  finished.isoformat(), title=f"load {url}", reason=reason,
                  env=envinfo.collect({"kind": "target", "url": url}),
                  params={k: [v] for k, v in params.items()}, cases=(case,),
                  metrics={m.name: m.to_dict() for m in declared})


def _show(result) -> None:
    from harness.present import terminal

    terminal.terminal(result, out)


def locust_worker_cmd(
    master: Annotated[str, typer.Option(help="HOST:PORT of the master `labs load --remote-workers` started.",
                                        show_default=False)],
) -> None:
    """Join a `labs load` run as an extra load generator (Locust's worker protocol): for when one
    machine cannot generate enough load. Stops when the master does."""
    host, _, port = master.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--master {master!r}: expected HOST:PORT", hint="labs locust-worker --master 10.0.0.5:5557")
    argv = [sys.executable, "-m", "harness.measure.loadgen", "--worker", "--master", f"{host}:{port}"]
    proc = subprocess.Popen(argv)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise Interrupted("the worker left its master") from None
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("load")(load_cmd)
    app.command("locust-worker")(locust_worker_cmd)
