"""Real Gunicorn + Locust on the embedded stack: verification, a short load per worker class,
the queries clamp, and no server left behind."""
from __future__ import annotations

import json

import psutil
import pytest

from harness.measure.http import EXPECTED_FACTS, Server, ServerConfig, get, verify
from harness.measure.runner import RunOptions, run_scenario
from harness.project import registry

pytestmark = pytest.mark.stack


def _gunicorns() -> list[psutil.Process]:
    from tests.test_cli import _cmdline

    return [p for p in psutil.Process().children(recursive=True) if "gunicorn" in _cmdline(p)]


@pytest.fixture(scope="module")
def seeded(stack):
    from labs.bookstore.seed import seed_techempower

    seed_techempower(42)
    return stack


@pytest.fixture(scope="module")
def result(seeded, tiny_budget):
    params = {"configs": "sync_2,gthread_2x2,gevent_2,asgi_1,uvicorn_1", "endpoints": "json,db,io", "users": "4",
              "burst_s": "0.6", "warmup_s": "0.2", "rounds": "1", "boot_rounds": "1", "preload_workers": "2"}
    res = run_scenario(registry.get("gunicorn"), RunOptions(("gunicorn",), params=params, budget=tiny_budget),
                       seeded)
    yield res


def test_every_worker_class_served_load_without_failures(result):
    assert result.ok, [(c.variant, c.name, c.detail) for c in result.checks if not c.ok]
    for case in result.cases:
        if case.name == "boot":
            continue
        assert set(case.variants) == {"sync_2", "gthread_2x2", "gevent_2", "asgi_1", "uvicorn_1"}
        for v in case.variants.values():
            assert v.metrics["requests"] > 0, (case.name, v.name)
            assert v.metrics["failures"] == 0, (case.name, v.name, v.metrics.get("errors"))
            assert v.metrics["p95_ms"] is not None and v.metrics["generator_bound"] in {"yes", "no"}


def test_preload_shares_memory(result):
    boot = next(c for c in result.cases if c.name == "boot")
    off, on = boot.variants["preload_off"], boot.variants["preload_on"]
    assert off.median_s > 0 and on.median_s > 0
    assert on.metrics["pss_mib"] < off.metrics["pss_mib"]  # copy-on-write pages shared with the master


def test_no_gunicorn_left_after_the_run(result):
    assert _gunicorns() == []


def test_verification_and_queries_clamp(seeded, tmp_path):
    with Server(ServerConfig("verify", "sync", 1), tmp_path, {"LABS_CONN_MAX_AGE": "0"}) as server:
        facts = verify(server.url)
        for key, expected in EXPECTED_FACTS.items():
            assert facts[key] == expected
        for raw, n in (("", 1), ("0", 1), ("abc", 1), ("-3", 1), ("5", 5), ("501", 500), ("500", 500)):
            status, headers, body = get(f"{server.url}/queries?queries={raw}")
            rows = json.loads(body)
            assert status == 200 and headers["content-type"] == "application/json" and len(rows) == n, raw
        status, _, body = get(f"{server.url}/queries?n=7")
        assert len(json.loads(body)) == 7
        assert get(f"{server.url}/nope")[0] == 404
        pids = [p.pid for p in server.processes()]
        assert pids
        for p in server.processes():
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    assert c.laddr.ip == "127.0.0.1"
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
