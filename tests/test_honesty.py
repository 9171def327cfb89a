"""Every check can fail, every claim is measured: each test here feeds a wrong answer (or a missing
feature) to the piece that must notice it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.measure.contract import VariantRun
from harness.measure.runner import RunOptions, lesson, run_scenario
from harness.results import compare as cmp
from harness.results.model import CaseResult, CheckOutcome, Result, VariantResult
from harness.scenario import Calibrated, Case, Scenario, Variant, same_result_as


def runs(**by_variant) -> dict[str, VariantRun]:
    return {name: VariantRun(name, 1, spec.get("counters", {}), spec.get("results", [None]), spec.get("metrics", {}))
            for name, spec in by_variant.items()}


# -- checks that compared too little ----------------------------------------------------------------
def test_pooling_answers_are_checked_against_the_database_not_their_keys():
    from scenarios.pooling import answers_match_database

    check = answers_match_database("persistent")
    ok = check.evaluate(runs(persistent={"results": [((200,), 5, 0)]}))
    wrong = check.evaluate(runs(persistent={"results": [((200,), 5, 2)]}))  # status 200, wrong rows
    failing = check.evaluate(runs(persistent={"results": [((200, 500), 4, 0)]}))
    assert ok.ok and not wrong.ok and not failing.ok
    assert "2 wrong" in wrong.detail


def test_async_answers_carry_the_upstream_payload_length():
    from scenarios.async_views import UPSTREAM_BODY, answers_right

    good = json.dumps([200, "application/json", {"upstream": len(UPSTREAM_BODY)}])
    bad = json.dumps([200, "application/json", {"upstream": 3}])
    check = answers_right("asgi_async")
    assert check.evaluate(runs(asgi_async={"results": [{"upstream": (good,)}]})).ok
    assert not check.evaluate(runs(asgi_async={"results": [{"upstream": (bad,)}]})).ok
    assert not check.evaluate(runs(asgi_async={"results": [{"orm": ((200,), 5, 1)}]})).ok


@pytest.mark.stack
def test_wrong_world_rows_are_counted(stack):
    from django.db import connection

    from harness.measure.http import wrong_world_rows
    from labs.bookstore.seed import seed_techempower

    seed_techempower()
    with connection.cursor() as cur:
        cur.execute("SELECT id, random_number FROM bookstore_world ORDER BY id LIMIT 2")
        (a, ra), (b, rb) = cur.fetchall()
    assert wrong_world_rows([{"id": a, "randomNumber": ra}, {"id": b, "randomNumber": rb}]) == 0
    assert wrong_world_rows([{"id": a, "randomNumber": ra + 1}, {"id": 10**9, "randomNumber": 1}]) == 2


def test_lost_at_crash_must_equal_what_the_queue_held():
    from scenarios.caching import _lost_at_crash_check

    check = _lost_at_crash_check()
    same = {"lost_keys_at_crash": 4, "pending_keys_at_crash": 4, "pending_at_crash": 7, "lost_outside_queue": 0}
    assert check.evaluate(runs(write_behind={"metrics": same})).ok
    assert not check.evaluate(runs(write_behind={"metrics": {**same, "lost_keys_at_crash": 2}})).ok
    assert not check.evaluate(runs(write_behind={"metrics": {**same, "lost_outside_queue": 1}})).ok
    assert not check.evaluate(runs(write_behind={"metrics": {"pending_at_crash": 7}})).ok  # not measured: not ok


def test_plan_nodes_are_matched_exactly():
    from scenarios.indexes import QUERIES, _plan_check

    qc = QUERIES["order_limit"]
    check = _plan_check("btree", "ix_btree", qc.expect["btree"], qc.forbid)

    def plan(nodes: str, used: str = "ix_btree"):
        return runs(btree={"metrics": {"plan_nodes": nodes, "index_used": used}})
    assert check.evaluate(plan("Limit > Index Scan")).ok
    # "Index Scan" is inside "Bitmap Index Scan", and a Sort is what the B-tree exists to avoid
    assert not check.evaluate(plan("Limit > Sort > Bitmap Heap Scan > Bitmap Index Scan")).ok
    assert not check.evaluate(plan("Limit > Index Scan > Sort")).ok
    assert not check.evaluate(plan("Limit > Index Scan", used="ix_other")).ok


def test_time_range_answers_compare_rows_not_a_digest():
    from scenarios.indexes import QUERIES

    digest = QUERIES["time_range"].digest
    # same count and the same sum of prices, different rows: a (count, sum) digest called them equal
    assert digest([(1, 10), (2, 20)]) != digest([(1, 20), (2, 10)])


def test_same_result_against_a_skipped_reference_is_skipped_not_passed():
    check = same_result_as("fast", "slow")
    outcome = check.evaluate(runs(fast={"results": [1]}))
    assert outcome.skipped and not outcome.ok
    assert "slow did not run" in outcome.detail


def test_a_structured_difference_names_its_path_and_both_values():
    mine = [{"count": 200, "results": [{"id": 1, "author": {"name": "a", "bio": "bio user0"}}]}]
    theirs = [{"count": 200, "results": [{"id": 1, "author": {"name": "a", "bio": "bio user25"}}]}]
    outcome = same_result_as("fast", "slow").evaluate(runs(fast={"results": mine}, slow={"results": theirs}))
    assert not outcome.ok
    assert "$.results[0].author.bio: 'bio user0' != 'bio user25'" in outcome.detail
    page_a, page_b = ["<html>" + "x" * 5000 + "price 10</html>"], ["<html>" + "x" * 5000 + "price 12</html>"]
    outcome = same_result_as("fast", "slow").evaluate(runs(fast={"results": page_a}, slow={"results": page_b}))
    assert "at character 5013" in outcome.detail  # 6 + 5000 + len("price 1") and "price 10" in outcome.detail


@pytest.mark.stack
def test_both_outputs_are_kept_when_answers_differ(stack, tiny_budget, tmp_path):
    case = Case("c", {}, "right", (Variant("right", lambda ctx: lambda: {"total": 1}),
                                   Variant("wrong", lambda ctx: lambda: {"total": 2})),
                (same_result_as("wrong", "right"),), timing=Calibrated(rounds=2))
    sc = Scenario("diffme", "t", frozenset({"postgres"}), {"quick": {}, "full": {}}, lambda p: [case])
    result = run_scenario(sc, RunOptions(("diffme",), budget=tiny_budget, results_dir=str(tmp_path)), stack)
    (check,) = result.checks
    assert not check.ok and "$.total: 2 != 1" in check.detail
    folder = tmp_path / result.run_id / "outputs" / "c"
    assert str(folder) in check.detail
    assert json.loads((folder / "wrong.json").read_text()) == [{"total": 2}]
    assert json.loads((folder / "right.json").read_text()) == [{"total": 1}]


# -- lessons from the run's numbers ----------------------------------------------------------------------
def _result(cases, checks_ok=True) -> Result:
    return Result("s", "r", "quick", True, "2026", cases=tuple(cases))


def test_a_failed_check_heads_the_lesson():
    failed = CaseResult("c", {}, "a", {"a": VariantResult("a")}, (CheckOutcome("stale reads == 0", "a", False, "3"),))
    lines = lesson(_result([failed]), ["cache_aside had 0 stale reads."])
    assert lines[0].startswith("1 check(s) FAILED") and "stale reads == 0" in lines[0]
    passed = CaseResult("c", {}, "a", {"a": VariantResult("a")}, (CheckOutcome("x", "a", True),))
    assert lesson(_result([passed]), ["fine."]) == ("fine.",)


def test_locking_lesson_says_what_each_strategy_lost():
    from scenarios.locking import summarize

    v = {"read_modify_write": VariantResult("read_modify_write", metrics={"lost_updates": 9}),
         "f_expression": VariantResult("f_expression", ratio=0.5, metrics={"lost_updates": 3})}
    case = CaseResult("counter", {"threads": 4, "increments": 15}, "read_modify_write", v)
    text = " ".join(summarize(_result([case])))
    assert "f_expression lost 3" in text and "lost 0" not in text


def test_index_size_sentence_follows_the_sizes():
    from scenarios.indexes import summarize

    def case(ops, path_ops):
        v = {"seq_scan": VariantResult("seq_scan"), "gin_jsonb_ops": VariantResult("gin_jsonb_ops", metrics={"index_kib": ops}),
             "gin_jsonb_path_ops": VariantResult("gin_jsonb_path_ops", metrics={"index_kib": path_ops})}
        return CaseResult("jsonb", {}, "seq_scan", v)
    assert "2.0× smaller" in " ".join(summarize(_result([case(200, 100)])))
    assert "2.0× larger" in " ".join(summarize(_result([case(100, 200)])))


def test_bulk_writes_signal_sentence_comes_from_the_counters():
    from scenarios.bulk_writes import summarize

    v = {"save_loop": VariantResult("save_loop", counters={"signals": 500.0}),
         "queryset_update_f": VariantResult("queryset_update_f", counters={"signals": 7.0})}
    text = " ".join(summarize(_result([CaseResult("update", {"rows": 500}, "save_loop", v)])))
    assert "queryset_update_f 7" in text and "save_loop 500" in text


# -- features that did not work as the README said ----------------------------------------------------
def test_docker_stack_up_starts_the_app_and_runs_do_not(monkeypatch):
    from harness.stack import docker

    calls = []

    class Done:
        returncode, stdout, stderr = 0, "127.0.0.1:5555\n", ""

    monkeypatch.setattr(docker, "available", lambda: None)
    monkeypatch.setattr(docker, "_compose", lambda *a, **kw: (calls.append(a), Done())[1])
    urls = docker.up(with_app=True)
    assert "app" in calls[0] and urls["app"] == "http://127.0.0.1:5555"
    calls.clear()
    assert "app" not in docker.up()
    assert "app" not in calls[0]


def test_asv_records_only_verified_runs():
    from benchmarks.labs_suite import verified

    good = {"complete": True, "ok": True, "cases": []}
    assert verified(good, 0, "n_plus_one") is good
    with pytest.raises(RuntimeError, match="incomplete"):
        verified({"complete": False, "reason": "interrupted", "cases": []}, 130, "n_plus_one")
    failing = {"complete": True, "ok": False, "cases": [{"checks": [{"variant": "fast", "name": "queries == 1",
                                                                      "ok": False, "skipped": False}]}]}
    with pytest.raises(RuntimeError, match="fast: queries == 1"):
        verified(failing, 1, "n_plus_one")


def _run(run_id: str, checks, complete=True) -> Result:
    v = {"slow": VariantResult("slow", (1.0,), 1, 1.0, 0.0, 1.0), "fast": VariantResult("fast", (0.1,), 1, 0.1, 0.0, 0.1)}
    case = CaseResult("c", {}, "slow", v, tuple(checks), rounds=1)
    return Result("s", run_id, "quick", complete, "2026", env={"cpus": 2, "cpu_model": "x"}, cases=(case,),
                  reason=None if complete else "crashed: OperationalError")


def test_a_vanished_check_fails_the_comparison():
    base = _run("20260101T000000Z-s-0001", [CheckOutcome("queries == 1", "fast", True)])
    new = _run("20260102T000000Z-s-0002", [])
    c = cmp.compare("base", [base], "new", [new])
    (row,) = [r for r in c.rows if r.verdict == "vanished"]
    assert row.metric == "check: queries == 1" and row.regressed


def test_an_incomplete_new_run_never_passes_and_an_incomplete_base_warns():
    base = _run("20260101T000000Z-s-0001", [])
    crashed = _run("20260102T000000Z-s-0002", [], complete=False)
    c = cmp.compare("base", [base], "new", [crashed])
    assert [r.verdict for r in c.regressions] == ["incomplete"] and "OperationalError" in c.regressions[0].detail
    c = cmp.compare("base", [_run("20260101T000000Z-s-0001", [], complete=False)], "new",
                    [_run("20260102T000000Z-s-0002", [])])
    assert any("warning: base run" in n for n in c.notes) and not c.regressions


def test_empty_variant_selection_is_a_usage_error():
    result = CliRunner().invoke(app, ["run", "n_plus_one", "--variants", ",,,"])
    assert result.exit_code == 2
    assert "names no variant" in result.output and "prefetch_related" in result.output


def test_compare_that_compares_nothing_is_an_error(tmp_path):
    from harness.results import store

    store.save(_run("20260101T000000Z-s-0001", []), tmp_path)
    other = _run("20260102T000000Z-t-0002", [])
    store.save(Result(**{**other.__dict__, "scenario": "t"}), tmp_path)
    result = CliRunner().invoke(app, ["compare", "20260101T000000Z-s-0001", "20260102T000000Z-t-0002",
                                      "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "nothing was compared" in result.output


def test_ci_script_fails_when_python_312_is_missing_and_exports_ci():
    text = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert 'export CI="${CI:-true}"' in text
    assert "skipping the Django 6 run" not in text
    assert "LABS_REQUIRE" in text  # skips that hide a missing install fail in CI
