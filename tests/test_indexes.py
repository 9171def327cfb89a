"""indexes on the embedded PostgreSQL at the smallest size that still yields honest plans."""
from __future__ import annotations

import pytest

from harness.measure.runner import RunOptions, run_scenario
from harness.project import registry
from scenarios import indexes

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def result(stack, tiny_budget):
    opts = RunOptions(("indexes",), params={"rows": "40000"}, budget=tiny_budget)
    return run_scenario(registry.get("indexes"), opts, stack)


def test_every_plan_check_passes(result):
    failed = [(c.variant, c.name, c.detail) for c in result.checks if not c.ok]
    assert not failed


@pytest.mark.parametrize("case", list(indexes.QUERIES))
def test_each_variant_uses_its_index_and_returns_the_baseline_rows(result, case):
    c = next(x for x in result.cases if x.name == case)
    base = c.variants["seq_scan"].metrics
    assert "Seq Scan" in base["plan_nodes"] and base["index_used"] == "—"
    for name, expected_nodes in indexes.QUERIES[case].expect.items():
        m = c.variants[name].metrics
        assert indexes.index_name_for(case, name) in m["index_used"].split(","), (name, m["plan_nodes"])
        assert any(n in m["plan_nodes"] for n in expected_nodes), (name, m["plan_nodes"])
        assert m["index_kib"] > 0 and m["build_s"] >= 0
    checks = {(x.variant, x.name): x.ok for x in c.checks}
    assert all(checks[(n, "same result as seq_scan")] for n in indexes.QUERIES[case].variants)


def test_sizes_tell_the_story(result):
    sizes = {c.name: {n: v.metrics.get("index_kib") for n, v in c.variants.items()} for c in result.cases}
    assert sizes["time_range"]["brin"] < sizes["time_range"]["btree"] / 10
    assert sizes["partial"]["partial"] < sizes["partial"]["full"] / 2
    assert sizes["jsonb"]["gin_jsonb_path_ops"] < sizes["jsonb"]["gin_jsonb_ops"]


def test_covering_index_answers_from_the_index_alone(result):
    c = next(x for x in result.cases if x.name == "covering")
    assert c.variants["covering"].metrics["top_node"] == "Index Only Scan"
    assert c.variants["covering"].metrics["heap_fetches"] == 0


def test_exclusion_constraint_rejects_an_overlap(stack):
    assert indexes.exclusion_demo() is True


def test_no_planner_tricks():
    import inspect
    import re

    assert not re.search(r"SET\s+enable_", inspect.getsource(indexes), re.IGNORECASE)
