"""Bounded Locust load bursts, in a child process (Locust monkeypatches the world with gevent).

The child (`python -m harness.measure.loadgen`) reads one JSON request per line on stdin and answers
one JSON line per burst on stdout:
  {"host": "http://127.0.0.1:PORT", "paths": [["/json", 1]], "users": 20, "duration_s": 2,
   "max_requests": 100000}
  -> {"requests": N, "failures": F, "duration_s": D, "rps": R, "p50_ms": .., "p95_ms": .., "p99_ms": ..,
      "histogram_ms": {"12": 40, ...}, "errors": {...}, "generator_cpu": 0.83}
Each burst stops by itself at `duration_s` or `max_requests`, whichever comes first; stats are
reset once every user has spawned, so ramp-up is not measured. Loopback targets only.
`LoadGenerator` is the parent's handle.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from pathlib import Path

from harness.errors import LabsError

MARK = "@@labs-loadgen "
"""Prefix of the child's answers: other stdout lines (library chatter) are logged, not parsed."""


class LoadGenerator:
    """One or more Locust child processes (`processes` > 1 spreads the users over several cores,
    like `locust --processes`; merged results as one burst)."""

    def __init__(self, log_path: Path, processes: int = 1) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "ab")
        self.procs = [subprocess.Popen([sys.executable, "-m", "harness.measure.loadgen"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
                      for _ in range(max(1, processes))]

    @property
    def proc(self) -> subprocess.Popen:
        return self.procs[0]

    def burst(self, host: str, paths: list[tuple[str, int]], users: int, duration_s: float,
              max_requests: int = 1_000_000) -> dict:
        if urllib.parse.urlsplit(host).hostname not in {"127.0.0.1", "localhost", "::1"}:
            raise LabsError(f"refusing to load {host}: the lab only loads servers on loopback")
        n = len(self.procs)
        shares = [users // n + (1 if i < users % n else 0) for i in range(n)]
        active = [(p, s) for p, s in zip(self.procs, shares) if s > 0]
        for proc, share in active:  # all start together...
            request = {"host": host, "paths": paths, "users": share, "duration_s": duration_s,
                       "max_requests": max(1, max_requests // len(active))}
            try:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
            except BrokenPipeError:
                raise LabsError(f"the load generator died (exit {proc.poll()}); see {self.log.name}") from None
        answers = [self._answer(proc) for proc, _ in active]  # ...and are read back in turn
        return answers[0] if len(answers) == 1 else merge(answers)

    def _answer(self, proc: subprocess.Popen) -> dict:
        line = proc.stdout.readline()
        while line and not line.startswith(MARK):  # anything else a library printed
            self.log.write(line.encode())
            line = proc.stdout.readline()
        if not line:
            raise LabsError(f"the load generator died (exit {proc.poll()}); see {self.log.name}")
        answer = json.loads(line[len(MARK):])
        if "error" in answer:
            raise LabsError(f"load generator: {answer['error']}")
        return answer

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.stdin.close()
                    proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
            proc.stdout.close()
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


def merge(bursts: list[dict]) -> dict:
    """Bursts of several generator processes that ran at the same time, as one."""
    histogram: dict[str, int] = {}
    errors: dict[str, int] = {}
    for b in bursts:
        for k, v in b["histogram_ms"].items():
            histogram[k] = histogram.get(k, 0) + v
        for k, v in b["errors"].items():
            errors[k] = errors.get(k, 0) + v
    requests = sum(b["requests"] for b in bursts)
    duration = max(b["duration_s"] for b in bursts)
    return {"requests": requests, "failures": sum(b["failures"] for b in bursts), "duration_s": duration,
            "rps": round(requests / duration, 2) if duration else 0.0,
            "p50_ms": histogram_percentile(histogram, 0.5), "p95_ms": histogram_percentile(histogram, 0.95),
            "p99_ms": histogram_percentile(histogram, 0.99), "histogram_ms": histogram, "errors": errors,
            "generator_cpu": round(sum(b["generator_cpu"] for b in bursts), 3), "processes": len(bursts)}


# -- the child -------------------------------------------------------------------------------------
def _burst(spec: dict) -> dict:
    import random
    import resource
    import time

    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    paths = [p for p, _ in spec["paths"]]
    weights = [w for _, w in spec["paths"]]

    class Visitor(FastHttpUser):
        host = spec["host"]
        wait_time = constant(0)
        network_timeout = 10.0
        connection_timeout = 5.0

        @task
        def visit(self) -> None:
            path = random.choices(paths, weights)[0]
            with self.client.get(path, name=path.split("?")[0], catch_response=True) as resp:
                if resp.status_code != 200:
                    resp.failure(f"HTTP {resp.status_code}")

    env = Environment(user_classes=[Visitor])
    runner = env.create_local_runner()
    users = int(spec["users"])
    runner.start(users, spawn_rate=max(users * 10, 100))
    deadline = time.monotonic() + 10
    while runner.user_count < users and time.monotonic() < deadline:
        gevent.sleep(0.01)
    env.stats.reset_all()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    end = t0 + float(spec["duration_s"])
    cap = int(spec.get("max_requests", 1_000_000))
    while time.monotonic() < end and env.stats.total.num_requests < cap:
        gevent.sleep(0.02)
    elapsed = time.monotonic() - t0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    total = env.stats.total
    snapshot = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "duration_s": round(elapsed, 4),
        "rps": round(total.num_requests / elapsed, 2) if elapsed > 0 else 0.0,
        "p50_ms": total.get_response_time_percentile(0.5) if total.num_requests else None,
        "p95_ms": total.get_response_time_percentile(0.95) if total.num_requests else None,
        "p99_ms": total.get_response_time_percentile(0.99) if total.num_requests else None,
        "histogram_ms": {str(k): v for k, v in sorted(total.response_times.items())},
        "errors": {str(e.error): e.occurrences for e in env.stats.errors.values()},
        "generator_cpu": round(((usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime))
                               / elapsed, 3) if elapsed > 0 else 0.0,
    }
    runner.quit()
    return snapshot


def main() -> None:
    import logging

    import locust  # noqa: F401 - monkeypatches with gevent: do it before anything else runs

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = _burst(json.loads(line))
        except Exception as exc:  # reported to the parent as data, the child keeps serving
            answer = {"error": repr(exc)}
        sys.stdout.write(MARK + json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
