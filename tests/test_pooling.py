"""pooling with a real PgBouncer and real Gunicorn on the embedded stack, tiny sizes."""
from __future__ import annotations

from dataclasses import replace

import pytest

from harness.measure.runner import RunOptions, run_scenario
from harness.project import registry
from harness.stack import pgbouncer

pytestmark = pytest.mark.stack

PARAMS = {"users": "4", "burst_s": "0.6", "warmup_s": "0.2", "rounds": "1", "workers": "1", "threads": "3",
          "django_pool": "1:2:5", "bouncer_pool": "2", "clients": "12", "limit": "5", "hold_ms": "60",
          "pool_max": "3", "pool_timeout_s": "0.05", "crowd_rounds": "1",
          "sweep_strategies": "no_pool,pgbouncer_transaction", "sweep_fractions": "0.5,1.2", "sweep_rounds": "1"}


@pytest.fixture(scope="module")
def result(stack, tiny_budget):
    from tests.helpers import need

    need("pgbouncer", pgbouncer.binary() is not None, "apt-get install pgbouncer; .ci/run installs it")
    return run_scenario(registry.get("pooling"), RunOptions(("pooling",), params=PARAMS, budget=tiny_budget), stack)


def test_all_checks_pass(result):
    assert result.ok, [(c.variant, c.name, c.detail) for c in result.checks if not c.ok]


def test_connection_counts_follow_each_design(result):
    http = next(c for c in result.cases if c.name == "http")
    v = {n: x.metrics for n, x in http.variants.items()}
    assert v["no_pool"]["sessions_per_request"] >= 0.5  # a new backend per request
    assert v["persistent"]["sessions_per_request"] < 0.2 and v["persistent"]["server_conns"] <= 3
    assert v["django_pool"]["server_conns"] <= 2  # max_size per process, 1 process
    assert v["pgbouncer_transaction"]["server_conns"] <= 2  # the PgBouncer pool size
    for name, m in v.items():
        assert m["failures"] == 0 and m["requests"] > 0, (name, m)


def test_crowd_errors_by_kind(result):
    crowd = next(c for c in result.cases if c.name == "crowd")
    m = {n: x.metrics for n, x in crowd.variants.items()}
    assert m["no_pool"]["error_kinds"].get("too many connections", 0) > 0
    assert m["pgbouncer_transaction"]["errors"] == 0
    # the pool is smaller than the crowd and its timeout shorter than the queue: it times out, and only that
    assert set(m["django_pool"]["error_kinds"]) == {"PoolTimeout"}, m["django_pool"]


def test_transaction_mode_needs_prepare_threshold_none(result):
    crowd = next(c for c in result.cases if c.name == "crowd")
    demo = crowd.variants["pgbouncer_transaction"].metrics["prepared_statements"]
    assert demo["prepare_threshold=None"] == "ok"
    assert "prepared statement" in demo["prepare_threshold=0"]


def test_no_server_left_behind(result):
    import psutil

    from tests.test_cli import _cmdline

    names = [_cmdline(p) for p in psutil.Process().children(recursive=True)]
    assert not [n for n in names if "gunicorn" in n or "pgbouncer" in n]


def test_pgbouncer_missing_is_skipped_with_hint(stack, tiny_budget):
    info = replace(stack, startable=frozenset())
    opts = RunOptions(("pooling",), params=PARAMS, budget=tiny_budget, variants=("persistent",))
    res = run_scenario(registry.get("pooling"), opts, info)
    http = next(c for c in res.cases if c.name == "http")
    assert set(http.variants) == {"no_pool", "persistent"}
    opts = RunOptions(("pooling",), params=PARAMS, budget=tiny_budget, variants=("pgbouncer_session",))
    res = run_scenario(registry.get("pooling"), opts, info)
    skipped = next(c for c in res.cases if c.name == "http").variants["pgbouncer_session"].skipped
    assert skipped and "apt-get install pgbouncer" in skipped


def test_the_sweep_offers_each_strategy_the_same_rates(result):
    sweep = next(c for c in result.cases if c.name == "sweep")
    offered = {n: v.metrics["offered_rps"] for n, v in sweep.variants.items()}
    assert set(offered) == {"no_pool@0.5", "no_pool@1.2", "pgbouncer_transaction@0.5", "pgbouncer_transaction@1.2"}
    assert offered["no_pool@0.5"] == offered["pgbouncer_transaction@0.5"]
    assert offered["no_pool@1.2"] == pytest.approx(2.4 * offered["no_pool@0.5"], abs=0.2)
    assert all(v.metrics["requests"] > 0 for v in sweep.variants.values())
