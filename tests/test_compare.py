"""labs compare on synthetic result files with known differences; golden markdown and JSON."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import UsageError
from harness.results import compare as cmp
from harness.results import store
from harness.results.model import CaseResult, CheckOutcome, Result, VariantResult

GOLDEN = Path(__file__).parent / "golden"


def make_run(run_id: str, seed: int, *, slow_factor: float = 1.0, fast_factor: float = 1.0,
             fast_queries: float = 2.0, params=None, noise: float = 0.03, check_ok: bool = True) -> Result:
    """Two variants measured in 30 interleaved rounds with a shared drift (as the runner does)."""
    rng = np.random.default_rng(seed)
    drift = rng.lognormal(0, 0.10, 30)  # the machine's mood, shared by both variants of a round
    slow = 0.010 * slow_factor * drift * rng.lognormal(0, noise, 30)
    fast = 0.001 * fast_factor * drift * rng.lognormal(0, noise, 30)
    ratios = fast / slow
    variants = {
        "naive": VariantResult("naive", tuple(slow), 1, float(np.median(slow)), 0.0, 1.0, (1.0, 1.0),
                               {"queries": 21.0}),
        "prefetch": VariantResult("prefetch", tuple(fast), 10, float(np.median(fast)), 0.0,
                                  float(np.median(ratios)), (float(np.min(ratios)), float(np.max(ratios))),
                                  {"queries": fast_queries}),
    }
    checks = (CheckOutcome("queries == 2", "prefetch", check_ok, f"{fast_queries:g} queries"),)
    case = CaseResult("books=10", params or {"books": 10}, "naive", variants, checks, rounds=30)
    return Result("n_plus_one", run_id, "quick", True, f"2026-01-0{seed % 9 + 1}T00:00:00+00:00", title="t",
                  env={"cpus": 2, "python": "3.11.7", "django": "5.2"}, params={"books": [10]}, cases=(case,))


BASE = make_run("20260101T000000Z-n_plus_one-0001", seed=1)


def verdicts(c: cmp.Comparison) -> dict[tuple[str, str], str]:
    return {(r.variant, r.metric): r.verdict for r in c.rows}


def test_pure_noise_is_unchanged():
    for seed in range(2, 12):
        new = make_run(f"20260102T000000Z-n_plus_one-{seed:04d}", seed=seed)
        c = cmp.compare("base", [BASE], "new", [new])
        assert not c.regressions, [(r.variant, r.metric, r.change) for r in c.regressions]


def test_one_extra_query_is_always_a_regression():
    new = make_run("20260102T000000Z-n_plus_one-0002", seed=2, fast_queries=3.0)
    c = cmp.compare("base", [BASE], "new", [new])
    v = verdicts(c)
    assert v[("prefetch", "queries")] == "worse"
    assert v[("prefetch", "time")] == "unchanged"
    assert len(c.regressions) == 1


def test_a_40_percent_slowdown_is_detected_in_time_and_ratio():
    new = make_run("20260102T000000Z-n_plus_one-0003", seed=3, fast_factor=1.4)
    v = verdicts(cmp.compare("base", [BASE], "new", [new]))
    assert v[("prefetch", "time")] == "slower"
    assert v[("prefetch", "ratio")] == "slower"
    assert v[("naive", "time")] == "unchanged"


def test_ratio_sees_a_slowdown_hidden_by_a_faster_machine():
    # The whole machine is 30 % faster, but prefetch lost 25 % relative to naive: only the
    # within-run paired ratio catches it.
    new = make_run("20260102T000000Z-n_plus_one-0004", seed=4, slow_factor=0.7, fast_factor=0.7 * 1.25)
    v = verdicts(cmp.compare("base", [BASE], "new", [new]))
    assert v[("prefetch", "ratio")] == "slower"
    assert v[("prefetch", "time")] != "slower"


def test_improvement_is_reported_not_failed():
    new = make_run("20260102T000000Z-n_plus_one-0005", seed=5, fast_factor=0.5)
    c = cmp.compare("base", [BASE], "new", [new])
    assert verdicts(c)[("prefetch", "time")] == "faster"
    assert not c.regressions and c.improvements


def test_mismatched_params_are_incomparable():
    new = make_run("20260102T000000Z-n_plus_one-0006", seed=6, params={"books": 20})
    c = cmp.compare("base", [BASE], "new", [new])
    assert [r.verdict for r in c.rows] == ["incomparable"]
    other_profile = replace(make_run("20260102T000000Z-n_plus_one-0007", seed=7), profile="full")
    assert cmp.compare("b", [BASE], "n", [other_profile]).rows[0].verdict == "incomparable"


def test_failed_check_is_a_regression():
    new = make_run("20260102T000000Z-n_plus_one-0008", seed=8, check_ok=False)
    c = cmp.compare("base", [BASE], "new", [new])
    assert any(r.metric.startswith("check:") and r.verdict == "failing" for r in c.regressions)


def test_noise_floor_from_several_base_runs_widens_thresholds():
    # base runs disagree by ~30 % on prefetch: a 35 % move is within twice that spread
    runs = [make_run("20260101T000000Z-n_plus_one-0001", seed=1),
            make_run("20260101T000001Z-n_plus_one-0002", seed=2, fast_factor=1.3)]
    new = make_run("20260102T000000Z-n_plus_one-0009", seed=9, fast_factor=1.35 * 1.3)
    assert verdicts(cmp.compare("one", runs[1:], "new", [new]))[("prefetch", "time")] == "slower"
    assert verdicts(cmp.compare("two", runs, "new", [new]))[("prefetch", "time")] == "unchanged"


@pytest.mark.parametrize("text, metric, value", [("time:10%", "time", 0.10), ("ratio:0.05", "ratio", 0.05),
                                                 (" time : 25 % ", "time", 0.25)])
def test_threshold_parse(text, metric, value):
    t = cmp.Threshold.parse(text)
    assert (t.metric, t.fraction) == (metric, pytest.approx(value))
    assert t.fails(1.3, (1.1, 1.5)) == (1.3 > 1 + value)
    assert not t.fails(1.3, (0.9, 1.5))  # interval includes 1: not evidence


@pytest.mark.parametrize("text", ["time", "time:", "speed:10%", "time:-5%", "time:0%", "time:abc", "time:5000%"])
def test_bad_threshold(text):
    with pytest.raises(UsageError):
        cmp.Threshold.parse(text)


def _golden(name: str, text: str) -> None:
    from tests.helpers import golden

    golden(GOLDEN / name, text)


def test_markdown_and_json_golden():
    new = make_run("20260102T000000Z-n_plus_one-0003", seed=3, fast_factor=1.4, fast_queries=3.0)
    c = cmp.compare("baseline main", [BASE], "20260102T000000Z-n_plus_one-0003", [new])
    _golden("compare.md", cmp.to_markdown(c))
    data = json.loads(cmp.to_json(c))
    assert data["regressions"] == len(c.regressions) == 3
    _golden("compare.json", cmp.to_json(c) + "\n")


def test_cli_compare_exit_codes_and_baselines(tmp_path):
    runner = CliRunner()
    store.save(BASE, tmp_path)
    same = make_run("20260102T000000Z-n_plus_one-0002", seed=2)
    store.save(same, tmp_path)
    ok = runner.invoke(app, ["compare", "--results-dir", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "no regression" in ok.output
    res = runner.invoke(app, ["baseline", "save", "main", BASE.run_id, "--results-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    store.save(make_run("20260103T000000Z-n_plus_one-0003", seed=3, fast_queries=3.0), tmp_path)
    bad = runner.invoke(app, ["compare", "main", "latest", "--format", "markdown", "--results-dir", str(tmp_path)])
    assert bad.exit_code == 1
    assert "REGRESSION" in bad.output and "| queries |" in bad.output
    listed = runner.invoke(app, ["baseline", "list", "--results-dir", str(tmp_path)])
    assert "main" in listed.output and BASE.run_id in listed.output
    for args in (["compare", "nope", "latest"], ["compare", "-t", "speed:5", "previous", "latest"],
                 ["baseline", "save", "../evil"], ["compare", "--format", "xml"]):
        res = runner.invoke(app, [*args, "--results-dir", str(tmp_path)])
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output


def test_confirm_keeps_only_reproduced_timing_regressions():
    slow = make_run("20260102T000000Z-n_plus_one-0003", seed=3, fast_factor=1.4, fast_queries=3.0)
    first = cmp.compare("base", [BASE], "first", [slow])
    assert {r.metric for r in first.regressions} == {"time", "ratio", "queries"}
    noise = make_run("20260102T000001Z-n_plus_one-0004", seed=4, fast_queries=3.0)
    confirmed = cmp.confirm(first, cmp.compare("base", [BASE], "again", [noise]))
    # the timing alarm did not reproduce; the extra query is exact and stays a regression
    assert {r.metric for r in confirmed.regressions} == {"queries"}
    assert {r.verdict for r in confirmed.rows if r.variant == "prefetch" and r.metric in {"time", "ratio"}} == {"unconfirmed"}
    again_slow = make_run("20260102T000002Z-n_plus_one-0005", seed=5, fast_factor=1.4, fast_queries=3.0)
    still = cmp.confirm(first, cmp.compare("base", [BASE], "again", [again_slow]))
    assert {r.metric for r in still.regressions} == {"time", "ratio", "queries"}


def test_another_machine_makes_timings_incomparable_but_counters_still_count():
    other = make_run("20260102T000000Z-n_plus_one-0010", seed=10, fast_factor=3.0, fast_queries=3.0)
    other = replace(other, env={**other.env, "cpu_model": "a bigger box", "cpus": 64})
    c = cmp.compare("base", [BASE], "ci runner", [other])
    v = verdicts(c)
    assert v[("prefetch", "time")] == "incomparable" and ("prefetch", "ratio") not in v
    assert v[("prefetch", "queries")] == "worse"
    assert [r.metric for r in c.regressions] == ["queries"]
    assert any("another machine" in n for n in c.notes)


def _with_latency(run: Result, scale: float, seed: int, bursts: int = 5) -> Result:
    """The run's prefetch variant with load bursts: log-normal latencies around 5 ms × scale."""
    from harness.measure import latency

    rng = np.random.default_rng(seed)
    encoded = []
    for _ in range(bursts):
        h = latency.histogram()
        for value in rng.lognormal(np.log(5000 * scale), 0.4, 400):
            h.record_value(int(value))
        encoded.append(latency.encode(h))
    case = run.cases[0]
    v = case.variants["prefetch"]
    variants = {**case.variants, "prefetch": replace(v, metrics={**v.metrics, "latency_hdr": encoded})}
    return replace(run, cases=(replace(case, variants=variants),))


def test_tail_latency_is_compared_from_the_bursts_histograms():
    base = _with_latency(BASE, 1.0, seed=1)
    same = _with_latency(make_run("20260102T000000Z-n_plus_one-0002", seed=2), 1.0, seed=2)
    rows = {r.metric: r for r in cmp.compare("base", [base], "new", [same]).rows if r.variant == "prefetch"}
    assert rows["p99_ms"].verdict == rows["p95_ms"].verdict == "unchanged"
    assert rows["p99_ms"].ci95[0] < 1 < rows["p99_ms"].ci95[1]
    slow = _with_latency(make_run("20260102T000000Z-n_plus_one-0003", seed=3), 1.6, seed=3)
    rows = {r.metric: r for r in cmp.compare("base", [base], "new", [slow]).rows if r.variant == "prefetch"}
    assert rows["p99_ms"].verdict == "slower" and rows["p99_ms"].ci95[0] > 1.25
    assert "bootstrap over 5+5 bursts" in rows["p99_ms"].detail
    lenient = cmp.compare("base", [base], "new", [slow], thresholds=[cmp.Threshold.parse("p99:80%")])
    assert {r.metric: r.verdict for r in lenient.rows if r.variant == "prefetch"}["p99_ms"] == "unchanged"


def test_a_baseline_is_swapped_whole_and_a_broken_one_is_refused(tmp_path):
    runs = [make_run(f"2026010{i}T000000Z-n_plus_one-000{i}", seed=i) for i in (1, 2, 3)]
    for r in runs:
        store.save(r, tmp_path)
    saved = store.save_baseline("main", [r.run_id for r in runs[:2]], tmp_path)
    root = store.baselines_dir(tmp_path)
    assert len(saved) == 2 and (root / "main" / store.MANIFEST).exists()
    # killed between the two renames of a second save: no baseline, the new copy whole beside
    store.save_baseline("next", [runs[2].run_id], tmp_path)
    (root / "next").rename(root / ".main.new")
    (root / "main").rename(root / ".main.old")
    label, results = cmp.load_side("main", tmp_path)
    assert [r.run_id for r in results] == [runs[2].run_id]  # rolled forward, whole
    assert not (root / ".main.old").exists() and not (root / ".main.new").exists()
    # a half copy (a file lost) is refused with what to do, never compared against
    store.save_baseline("main", [r.run_id for r in runs], tmp_path)
    store.list_runs(root / "main")[0].unlink()
    with pytest.raises(UsageError, match="does not match its manifest"):
        cmp.load_side("main", tmp_path)


def test_one_corrupted_result_file_is_skipped_with_a_warning(tmp_path, capsys):
    for i in (1, 2):
        store.save(make_run(f"2026010{i}T000000Z-n_plus_one-000{i}", seed=i), tmp_path)
    (tmp_path / "20260101T120000Z-n_plus_one-dead.json").write_text('{"schema": 3, "scen')
    store.save_baseline("main", [], tmp_path)  # picks the newest complete runs, skipping the broken one
    _label, results = cmp.load_side(str(tmp_path), tmp_path)
    assert [r.run_id for r in results] == ["20260102T000000Z-n_plus_one-0002"]
    assert "20260101T120000Z-n_plus_one-dead.json" in capsys.readouterr().err
