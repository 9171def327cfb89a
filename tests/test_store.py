"""Results on disk: round trip, atomic writes, old schemas, incomplete runs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.results import store
from harness.results.model import CaseResult, CheckOutcome, Result, VariantResult

FIXTURES = Path(__file__).parent / "fixtures"


def make_result(run_id: str = "20260101T000000Z-demo-abcd", complete: bool = True) -> Result:
    variants = {
        "slow": VariantResult("slow", (0.01, 0.011), 1, 0.0105, 0.0005, 1.0, (1.0, 1.0), {"queries": 21.0}),
        "fast": VariantResult("fast", (0.001, 0.0011), 10, 0.00105, 0.00005, 0.1, (0.09, 0.11), {"queries": 1.0},
                              explain=({"top_node": "Seq Scan", "nodes": ["Seq Scan"]},)),
    }
    case = CaseResult("n=10", {"n": 10}, "slow", variants,
                      (CheckOutcome("queries == 1", "fast", True, "1 queries"),), rounds=2, duration_s=0.1)
    return Result("demo", run_id, "quick", complete, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00",
                  title="Demo", env={"git_sha": "abc", "cpus": 2}, params={"n": [10]}, cases=(case,),
                  lesson=("fast was 10× faster",), timings={"measure_s": 0.1})


def test_round_trip(tmp_path):
    result = make_result()
    path = store.save(result, tmp_path)
    assert path.name == f"{result.run_id}.json"
    data = json.loads(path.read_text())
    assert data["schema"] == store.SCHEMA and data["complete"] is True and data["ok"] is True
    loaded = store.load(path)
    assert loaded.cases[0].variants["fast"].ratio_ci95 == (0.09, 0.11)
    assert loaded.cases[0].variants["fast"].explain[0]["top_node"] == "Seq Scan"
    assert store.to_dict(loaded) == store.to_dict(result)


def test_committed_schema_1_fixture_loads():
    loaded = store.load(FIXTURES / "result-schema1.json")
    assert loaded.scenario == "n_plus_one"
    assert loaded.cases and all(v.median_s for v in loaded.cases[0].variants.values())


def test_atomic_write_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    result = make_result()
    path = store.save(result, tmp_path)
    before = path.read_text()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(UsageError, match="No space left on device"):
        store.save(result, tmp_path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_incomplete_result_is_marked(tmp_path):
    path = store.save(make_result(complete=False), tmp_path)
    data = json.loads(path.read_text())
    assert data["complete"] is False and data["ok"] is False


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"schema": 99, "cases": []}', "newer than this labs"),
    ('{"cases": []}', "no schema"),
    ('{"schema": 1}', "not a labs result"),
    ('[1, 2]', "not a labs result"),
])
def test_bad_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        store.load(path)


def test_resolve_latest_previous_and_prefix(tmp_path):
    a = store.save(make_result("20260101T000000Z-demo-aaaa"), tmp_path)
    b = store.save(make_result("20260102T000000Z-demo-bbbb"), tmp_path)
    assert store.resolve("latest", tmp_path) == b
    assert store.resolve("previous", tmp_path) == a
    assert store.resolve("20260101", tmp_path) == a
    with pytest.raises(UsageError, match="ambiguous"):
        store.resolve("2026", tmp_path)
    with pytest.raises(UsageError, match="no run"):
        store.resolve("nope", tmp_path)
    with pytest.raises(UsageError, match="no latest run"):
        store.resolve("latest", tmp_path / "empty")


def test_unwritable_results_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match="cannot write results"):
        store.save(make_result(), blocker / "results")


def test_a_missing_golden_file_fails_instead_of_writing_itself(tmp_path, monkeypatch):
    from tests.helpers import golden

    monkeypatch.delenv("LABS_UPDATE_GOLDEN", raising=False)
    with pytest.raises(AssertionError, match="missing"):
        golden(tmp_path / "new.md", "text")
    assert not (tmp_path / "new.md").exists()
