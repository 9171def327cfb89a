"""Bounded load bursts, in child processes (Locust monkeypatches the world with gevent).

Two ways to load a server, both measured into exact HDR histograms (harness.measure.latency):
  closed — Locust users with no wait: each sends its next request when the last one answered (what
           most load tools do; the generator slows down with the server, the tail is understated);
  open   — a fixed *offered* rate (wrk2's model): requests go out on schedule whatever the server
           does, each one's latency counted from its intended send time (coordinated omission
           corrected). Locust's own pacing (constant_throughput) is per user and still waits for
           each answer, so it cannot keep an offered rate through a stall: the schedule here is
           a greenlet per request on geventhttpclient, Locust's HTTP client.

One generator process (`python -m harness.measure.loadgen`) reads one JSON burst per line on stdin
and answers one JSON line per burst on stdout:
  {"mode": "open", "host": "http://127.0.0.1:PORT", "paths": [["/json", 1]], "rate": 400,
   "duration_s": 2, "max_requests": 100000}            (closed: "users": 20 instead of "rate")
  -> {"requests": N, "failures": F, "duration_s": D, "rps": R, "p50_ms": …, "p99_ms": …,
      "hdr": "<encoded histogram>", "errors": {…}, "generator_cpu": 0.83, "late": 0, …}
With `processes` > 1 it is a Locust master (loopback, Locust's own protocol) and the bursts run
on that many `--worker` processes — the same worker `labs locust-worker --master HOST:PORT` starts
on another machine; each worker sends its histogram back and the master merges them exactly.
Every burst stops by itself at `duration_s` or `max_requests`, whichever comes first.
`LoadGenerator` is the parent's handle.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from pathlib import Path

from harness.errors import LabsError

LATE_S = 0.010
"""An open-loop request sent this much after its intended time counts as late: the generator
could not keep its schedule (timer wake-ups are ~1 ms late routinely; 10 ms is falling behind)."""
MARK = "@@labs-loadgen "
"""Prefix of the child's answers: other stdout lines (library chatter) are logged, not parsed."""
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LoadGenerator:
    """The parent's handle: one generator process (a Locust master when `processes` > 1, with
    that many worker processes it starts itself)."""

    def __init__(self, log_path: Path, processes: int = 1, allow_remote: bool = False, remote_workers: int = 0,
                 master_bind: str = "127.0.0.1", master_port: int = 0) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "ab")
        self.processes = max(1, processes)
        self.allow_remote = allow_remote
        argv = [sys.executable, "-m", "harness.measure.loadgen", "--processes", str(self.processes)]
        if remote_workers:  # a master others join with `labs locust-worker --master HOST:PORT`
            argv += ["--remote", str(remote_workers), "--bind", master_bind, "--port", str(master_port)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     bufsize=1)

    def burst(self, host: str, paths: list[tuple[str, int]], users: int = 0, duration_s: float = 1.0,
              max_requests: int = 1_000_000, rate: float | None = None) -> dict:
        """One bounded burst: closed loop with `users`, or open loop at `rate` requests per second."""
        if urllib.parse.urlsplit(host).hostname not in LOOPBACK and not self.allow_remote:
            raise LabsError(f"refusing to load {host}: the lab only loads servers on loopback",
                            hint="for a server you own: labs load URL --i-own-this-target")
        spec = {"mode": "open" if rate else "closed", "host": host, "paths": paths, "users": users, "rate": rate,
                "duration_s": duration_s, "max_requests": max_requests}
        try:
            self.proc.stdin.write(json.dumps(spec) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise LabsError(f"the load generator died (exit {self.proc.poll()}); see {self.log.name}") from None
        line = self.proc.stdout.readline()
        while line and not line.startswith(MARK):  # anything else a library printed
            self.log.write(line.encode())
            line = self.proc.stdout.readline()
        if not line:
            raise LabsError(f"the load generator died (exit {self.proc.poll()}); see {self.log.name}")
        answer = json.loads(line[len(MARK):])
        if "error" in answer:
            raise LabsError(f"load generator: {answer['error']}")
        if rate:
            answer["offered_rps"] = round(float(rate), 2)  # the schedule's rate (its slots are whole requests)
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self.log.close()


def histogram_percentile(histogram: dict[str, int], q: float) -> float | None:
    """Percentile of a {ms: count} histogram (the way locust buckets response times)."""
    total = sum(histogram.values())
    if not total:
        return None
    target, seen = q * total, 0
    for ms, count in sorted(((float(k), v) for k, v in histogram.items())):
        seen += count
        if seen >= target:
            return ms
    return max(float(k) for k in histogram)


def merge(parts: list[dict]) -> dict:
    """Bursts that ran at the same time on several generator processes, as one: counts add, the
    HDR histograms merge exactly, percentiles are taken on the merged histogram."""
    from harness.measure import latency

    hist = latency.merge(p.get("hdr", "") for p in parts)
    service = latency.merge(p.get("service_hdr", "") for p in parts)
    errors: dict[str, int] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    requests = sum(p["requests"] for p in parts)
    duration = max(p["duration_s"] for p in parts)
    out = {"requests": requests, "failures": sum(p["failures"] for p in parts), "duration_s": duration,
           "rps": round(requests / duration, 2) if duration else 0.0, "errors": errors,
           "generator_cpu": round(sum(p["generator_cpu"] for p in parts), 3),
           "generator_cpu_max": round(max(p["generator_cpu"] for p in parts), 3), "processes": len(parts),
           "late": sum(p.get("late", 0) for p in parts), "mode": parts[0].get("mode"),
           "offered_rps": sum(p.get("offered_rps") or 0 for p in parts) or None,
           "hdr": latency.encode(hist), "service_hdr": latency.encode(service) if service.get_total_count() else ""}
    out.update(latency.percentiles_ms(hist))
    return out


# -- one process's share of a burst ---------------------------------------------------------------------
def _closed(spec: dict) -> dict:
    """Locust users with no wait (closed loop), latencies into an HDR histogram."""
    import random
    import resource
    import time

    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    from harness.measure import latency

    paths = [p for p, _ in spec["paths"]]
    weights = [w for _, w in spec["paths"]]
    hist = latency.histogram()

    class Visitor(FastHttpUser):
        host = spec["host"]
        wait_time = constant(0)
        network_timeout = 10.0
        connection_timeout = 5.0

        @task
        def visit(self) -> None:
            path = random.choices(paths, weights)[0]
            # a redirect is an answer, not a second target: following it could leave the
            # origin the run was allowed to load (counted as a failed request, its status named)
            with self.client.get(path, name=path.split("?")[0], catch_response=True,
                                 allow_redirects=False) as resp:
                if resp.status_code != 200:
                    resp.failure(f"HTTP {resp.status_code}")

    env = Environment(user_classes=[Visitor])
    recording = [False]

    def on_request(response_time=0.0, **_kw) -> None:
        if recording[0]:
            hist.record_value(max(1, int(response_time * 1000)))

    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    users = int(spec["users"])
    runner.start(users, spawn_rate=max(users * 10, 100))
    deadline = time.monotonic() + 10
    while runner.user_count < users and time.monotonic() < deadline:
        gevent.sleep(0.01)
    env.stats.reset_all()
    recording[0] = True
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    end = t0 + float(spec["duration_s"])
    cap = int(spec.get("max_requests", 1_000_000))
    while time.monotonic() < end and env.stats.total.num_requests < cap:
        gevent.sleep(0.02)
    elapsed = time.monotonic() - t0
    recording[0] = False
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    total = env.stats.total
    answer = {"mode": "closed", "requests": total.num_requests, "failures": total.num_failures,
              "duration_s": round(elapsed, 4), "errors": {str(e.error): e.occurrences for e in env.stats.errors.values()},
              "generator_cpu": _cpu(usage0, usage1, elapsed), "hdr": latency.encode(hist), "late": 0}
    runner.quit()
    return answer


def _open(spec: dict, share: int = 0, shares: int = 1) -> dict:
    """An open-loop share: this process's slots of the schedule, each request in its own greenlet,
    latency from its intended send time."""
    import random
    import resource
    import time

    import gevent
    from geventhttpclient import HTTPClient
    from geventhttpclient.url import URL

    from harness.measure import latency

    url = URL(spec["host"])
    paths = [p for p, _ in spec["paths"]]
    weights = [w for _, w in spec["paths"]]
    client = HTTPClient.from_url(url, concurrency=int(spec.get("connections", 512)), network_timeout=10.0,
                                 connection_timeout=5.0)
    hist, service = latency.histogram(), latency.histogram()
    counts = {"requests": 0, "failures": 0, "late": 0}
    errors: dict[str, int] = {}
    rate, duration = float(spec["rate"]), float(spec["duration_s"])
    cap = int(spec.get("max_requests", 1_000_000))
    start = time.perf_counter() + 0.05
    times = latency.schedule(rate, duration, start, share, shares, cap=max(1, cap))
    rng = random.Random(share)

    def one(intended: float) -> None:
        sent = time.perf_counter()
        if sent - intended > LATE_S:
            counts["late"] += 1  # the generator itself could not keep the schedule
        try:
            resp = client.get(rng.choices(paths, weights)[0])
            resp.read()
            ok = resp.status_code == 200
            if not ok:
                errors[f"HTTP {resp.status_code}"] = errors.get(f"HTTP {resp.status_code}", 0) + 1
        except Exception as exc:  # noqa: BLE001 - a failed request is data
            ok = False
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        done = time.perf_counter()
        counts["requests"] += 1
        counts["failures"] += not ok
        hist.record_value(max(1, int((done - intended) * 1e6)))
        service.record_value(max(1, int((done - sent) * 1e6)))

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    pending = []
    for intended in times:
        delay = intended - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        pending.append(gevent.spawn(one, intended))
    gevent.joinall(pending, timeout=15.0)
    unfinished = sum(1 for g in pending if not g.ready())
    gevent.killall([g for g in pending if not g.ready()], block=False)
    if unfinished:
        errors["unanswered after 15 s"] = unfinished
        counts["failures"] += unfinished
    elapsed = max(time.perf_counter() - start, 1e-9)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    client.close()
    return {"mode": "open", "requests": counts["requests"] + unfinished, "failures": counts["failures"],
            "duration_s": round(elapsed, 4), "errors": errors, "generator_cpu": _cpu(usage0, usage1, elapsed),
            "hdr": latency.encode(hist), "service_hdr": latency.encode(service), "late": counts["late"],
            "offered_rps": round(len(times) / duration, 2)}


def _cpu(usage0, usage1, elapsed: float) -> float:
    used = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return round(used / elapsed, 3) if elapsed > 0 else 0.0


def _share(spec: dict, share: int, shares: int) -> dict:
    out = dict(spec)
    out["users"] = spec["users"] // shares + (1 if share < spec["users"] % shares else 0)
    out["max_requests"] = max(1, spec["max_requests"] // shares)
    return out


def _run_share(spec: dict, share: int, shares: int) -> dict:
    mine = _share(spec, share, shares)
    if spec["mode"] == "open":
        return _open(mine, share, shares)
    if mine["users"] == 0:
        return {"mode": "closed", "requests": 0, "failures": 0, "duration_s": spec["duration_s"], "errors": {},
                "generator_cpu": 0.0, "hdr": "", "late": 0}
    return _closed(mine)


def finish(parts: list[dict]) -> dict:
    """The answer for a burst: the shares merged (one share is merged too: same fields either way)."""
    return merge(parts)


# -- processes ----------------------------------------------------------------------------------------------
def serve_local() -> None:
    """One generator process: every burst runs here."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = finish([_run_share(json.loads(line), 0, 1)])
        except Exception as exc:  # reported to the parent as data, the child keeps serving
            answer = {"error": repr(exc)}
        sys.stdout.write(MARK + json.dumps(answer) + "\n")
        sys.stdout.flush()


def serve_master(workers: int, bind: str = "127.0.0.1", port: int = 0, remote: int = 0) -> None:
    """A Locust master (on loopback unless told otherwise): starts `workers` worker processes,
    waits for `remote` more to join from other machines, hands each burst to all of them
    (Locust's protocol, custom messages) and merges their histograms."""
    import time

    import gevent
    from locust.env import Environment

    from harness.stack import procs

    port = port or procs.free_port()
    env = Environment()
    master = env.create_master_runner(bind, port)
    results: dict[str, dict] = {}
    master.register_message("labs_result", lambda msg, **_kw: results.__setitem__(msg.node_id, msg.data))
    children = [subprocess.Popen([sys.executable, "-m", "harness.measure.loadgen", "--worker", "--master",
                                  f"{bind}:{port}"], stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr)
                for _ in range(workers)]
    try:
        expected = workers + remote
        if remote:
            print(f"waiting for {remote} worker(s): labs locust-worker --master HOST:{port}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + (60 if not remote else 600)
        while master.worker_count < expected and time.monotonic() < deadline:
            gevent.sleep(0.1)
        if master.worker_count < expected:
            raise RuntimeError(f"only {master.worker_count} of {expected} load workers connected")
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                spec = json.loads(line)
                results.clear()
                ids = sorted(master.clients.keys())
                for i, client_id in enumerate(ids):
                    master.send_message("labs_burst", {"spec": spec, "share": i, "shares": len(ids)},
                                        client_id=client_id)
                deadline = time.monotonic() + float(spec["duration_s"]) + 60
                while len(results) < len(ids) and time.monotonic() < deadline:
                    gevent.sleep(0.02)
                if len(results) < len(ids):
                    raise RuntimeError(f"{len(ids) - len(results)} load worker(s) did not answer")
                failed = [r["error"] for r in results.values() if "error" in r]
                answer = {"error": failed[0]} if failed else finish(list(results.values()))
            except Exception as exc:  # noqa: BLE001
                answer = {"error": repr(exc)}
            sys.stdout.write(MARK + json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        master.quit()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def serve_worker(master_host: str, master_port: int) -> None:
    """A Locust worker: runs its share of each burst the master sends, answers with its histogram.
    Also what `labs locust-worker --master HOST:PORT` runs on another machine."""
    import gevent
    from locust.env import Environment

    env = Environment()
    worker = env.create_worker_runner(master_host, master_port)

    def on_burst(msg, **_kw) -> None:
        def run() -> None:
            data = msg.data
            try:
                answer = _run_share(data["spec"], data["share"], data["shares"])
            except Exception as exc:  # noqa: BLE001
                answer = {"error": repr(exc)}
            worker.send_message("labs_result", answer)
        gevent.spawn(run)

    worker.register_message("labs_burst", on_burst, concurrent=True)
    worker.greenlet.join()


def main(argv: list[str] | None = None) -> None:
    import argparse
    import logging

    import locust  # noqa: F401 - monkeypatches with gevent: do it before anything else runs

    parser = argparse.ArgumentParser(prog="harness.measure.loadgen")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--master", default="127.0.0.1:5557")
    parser.add_argument("--remote", type=int, default=0, help="workers to wait for from other machines")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.worker:
        host, _, port = args.master.rpartition(":")
        serve_worker(host or "127.0.0.1", int(port))
    elif args.processes > 1 or args.remote:
        serve_master(args.processes, args.bind, args.port, args.remote)
    else:
        serve_local()


if __name__ == "__main__":
    main()
