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
              "burst_s": "0.6", "warmup_s": "0.2", "rounds": "1", "boot_rounds": "1", "preload_workers": "2",
              "co_config": "gthread_2x2", "co_endpoint": "json", "sweep_configs": "sync_2,gthread_2x2",
              "sweep_endpoint": "json", "sweep_fractions": "0.5,1.5", "sweep_rounds": "1", "p99_budget_ms": "100"}
    res = run_scenario(registry.get("gunicorn"), RunOptions(("gunicorn",), params=params, budget=tiny_budget),
                       seeded)
    yield res


def test_every_worker_class_served_load_without_failures(result):
    assert result.ok, [(c.variant, c.name, c.detail) for c in result.checks if not c.ok]
    for case in result.cases:
        if case.name in ("boot", "closed_vs_open", "sweep"):
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


def test_closed_and_open_loop_load_the_same_server(result):
    case = next(c for c in result.cases if c.name == "closed_vs_open")
    closed, opened = case.variants["closed_loop"].metrics, case.variants["open_loop"].metrics
    assert closed["failures"] == 0 and "offered_rps" not in closed
    assert opened["offered_rps"] > 0 and opened["requests"] > 0
    assert opened["latency_hdr"] and closed["latency_hdr"]  # per-burst histograms kept for compare
    assert any("Coordinated omission on gthread_2x2" in line for line in result.lesson)


def test_the_sweep_offers_every_configuration_one_grid_of_rates(result):
    case = next(c for c in result.cases if c.name == "sweep")
    offered = {name: v.metrics["offered_rps"] for name, v in case.variants.items()}
    assert set(offered) == {"sync_2@0.5", "sync_2@1.5", "gthread_2x2@0.5", "gthread_2x2@1.5"}
    assert offered["sync_2@0.5"] == offered["gthread_2x2@0.5"]  # the same absolute rates for all
    assert offered["sync_2@1.5"] == pytest.approx(3 * offered["sync_2@0.5"], abs=0.2)
    assert {v.series for v in case.variants.values()} == {"sync_2", "gthread_2x2"}
    assert any(line.startswith("Latency against offered load on /json") for line in result.lesson)


def test_the_knee_is_where_a_server_stops_keeping_up():
    from harness.measure.sweep import knee

    ok = {"rps": 100, "p99_ms": 20, "failures": 0}
    assert knee([(100, ok), (200, {**ok, "rps": 199})], 100) == (None, "kept up at every offered rate")
    assert knee([(200, {**ok, "rps": 150}), (100, ok)], 100)[0] == 200  # served 75 % of offered
    assert knee([(100, ok), (200, {**ok, "rps": 200, "p99_ms": 150})], 100) == (
        200, "p99 150 ms over the 100 ms budget")
    assert knee([(100, {**ok, "failures": 3})], 100) == (100, "3 failed requests")
