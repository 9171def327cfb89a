"""Verdicts across commits from paired processes (harness.results.paired, harness.measure.commits):
the statistics on synthetic pairs with known variance — interval coverage, one-sided error
rates, the two-stage design's family-wise error — and one end-to-end `labs ci --against` on a real
commit that adds a query, plus the fallback when the base commit cannot run the scenario."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.results import paired

ROOT = Path(__file__).resolve().parent.parent


def _tests(rng, rows: dict[str, float], n: int, sd: float) -> dict:
    """Paired tests of rows whose true log change is given, per-pair noise `sd` (log scale)."""
    return {("c", name, "time"): paired.paired_test(list(rng.normal(mu, sd, n))) for name, mu in rows.items()}


def test_the_interval_covers_the_true_change_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true = math.log(1.04)
    covered = 0
    reps = 2000
    for _ in range(reps):
        t = paired.paired_test(list(rng.normal(true, 0.03, 6)))
        covered += t.ci95[0] <= math.exp(true) <= t.ci95[1]
    lo, hi = paired.binomial_interval(covered, reps)
    assert lo <= 0.95 <= hi, (covered, reps)


def test_one_sided_false_alarm_rate_is_alpha_under_no_change():
    rng = np.random.default_rng(11)
    reps = 4000
    alarms = sum(paired.paired_test(list(rng.normal(0.0, 0.05, 8))).p_slower < 0.05 for _ in range(reps))
    lo, hi = paired.binomial_interval(alarms, reps)
    assert lo <= 0.05 <= hi, (alarms, reps)
    # and a real slowdown is one-sided: a faster change never reads as slower
    faster = paired.paired_test(list(rng.normal(math.log(0.9), 0.02, 8)))
    assert faster.p_slower > 0.99 and faster.p_faster < 0.001


def _procedure(rng, rows: dict[str, float], sd: float, stages=(6, 6), alpha=0.05) -> bool:
    """The gate's two-stage procedure on synthetic pairs: did any row come out slower?"""
    n1, n2 = stages
    diffs = {k: list(rng.normal(mu, sd, n1)) for k, mu in rows.items()}
    first = {("c", k, "time"): paired.paired_test(d) for k, d in diffs.items()}
    judged = paired.judge(first, alpha / 2)
    if any(j.verdict == "slower" for j in judged):
        return True
    if not paired.suspects(first, judged):
        return False
    for k, mu in rows.items():
        diffs[k] += list(rng.normal(mu, sd, n2))
    second = {("c", k, "time"): paired.paired_test(d) for k, d in diffs.items()}
    return any(j.verdict == "slower" for j in paired.judge(second, alpha / 2))


def test_the_two_stage_gate_keeps_its_false_alarm_budget():
    """Four gated rows, no change, noise at the 3 % minimum effect: family-wise alarms ≤ 5 %."""
    rng = np.random.default_rng(3)
    reps = 2000
    alarms = sum(_procedure(rng, {f"v{i}": 0.0 for i in range(4)}, 0.03) for _ in range(reps))
    lo, _hi = paired.binomial_interval(alarms, reps)
    assert lo <= 0.05, (alarms, reps)


def test_the_second_stage_adds_pairs_and_finds_what_the_first_only_suspected():
    rng = np.random.default_rng(5)
    reps = 400
    one_stage = sum(_procedure(rng, {"v": math.log(1.05), "w": 0.0}, 0.04, stages=(6, 0)) for _ in range(reps))
    two_stage = sum(_procedure(rng, {"v": math.log(1.05), "w": 0.0}, 0.04, stages=(6, 6)) for _ in range(reps))
    assert two_stage > one_stage + reps // 10, (one_stage, two_stage)
    assert two_stage / reps > 0.6


def test_a_certain_change_below_the_minimum_effect_is_no_verdict():
    rng = np.random.default_rng(9)
    tests = _tests(rng, {"small": math.log(1.02), "big": math.log(1.08)}, 12, 0.002)
    verdicts = {j.key[1]: j.verdict for j in paired.judge(tests, 0.025)}
    assert verdicts == {"small": "unchanged", "big": "slower"}
    assert {j.key[1]: j.verdict for j in paired.judge(tests, 0.025, {"time": 0.01})}["small"] == "slower"


def test_binomial_intervals_are_exact():
    lo, hi = paired.binomial_interval(0, 20)
    assert lo == 0.0 and abs(hi - 0.1684) < 1e-3
    lo, hi = paired.binomial_interval(10, 10)
    assert abs(lo - 0.6915) < 1e-3 and hi == 1.0


# -- end to end: a real commit, a real stack ------------------------------------------------------------------
def _calibration():
    spec = importlib.util.spec_from_file_location("paired_calibration", ROOT / "benchmarks" / "paired_calibration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ci(repo: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "ci", "--suite", "quick", "--scenario", "listing",
                           "--results-dir", str(tmp / "results"), "--out-dir", str(tmp / "ci"), *args],
                          cwd=repo, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.stack
def test_a_commit_that_adds_a_query_is_caught_with_its_statement(tmp_path):
    cal = _calibration()
    repo, commits = cal.build_repo(tmp_path)
    subprocess.run(["git", "checkout", "-q", "query"], cwd=repo, check=True)
    done = _ci(repo, tmp_path, "--against", "base")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (tmp_path / "ci" / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if "| queries |" in line)
    assert "**worse**" in row and 'SELECT COUNT(*) AS "__count" FROM "shop_product"' in row
    assert commits["base"][:10] in summary and "pairs of processes" in summary
    # both sides are stored, each with its commit; the worktree is gone
    stored = {p.name.rsplit("-", 1)[1]: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    assert set(stored) == {"base.json", "candidate.json"}
    assert stored["base.json"]["env"]["git_sha"] == commits["base"]
    assert stored["candidate.json"]["env"]["git_sha"] == commits["query"]
    changes = stored["candidate.json"]["env"]["paired"]["changes"]  # the paired change, kept for history
    assert {(c["variant"], c["metric"]) for c in changes} >= {("plain", "time"), ("fixed", "time"), ("fixed", "ratio")}
    listing = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert listing.count("\n") == 1, listing


@pytest.mark.stack
def test_a_base_commit_without_the_scenario_falls_back_and_never_passes_silently(tmp_path):
    cal = _calibration()
    repo, _commits = cal.build_repo(tmp_path)
    subprocess.run(["git", "checkout", "-q", "-b", "older", "base"], cwd=repo, check=True)
    subprocess.run(["git", "rm", "-q", "perf/listing.py"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.email=l@x", "-c", "user.name=l", "commit", "-qm", "no scenario yet"],
                   cwd=repo, check=True)
    subprocess.run(["git", "checkout", "-q", "aa"], cwd=repo, check=True)
    done = _ci(repo, tmp_path, "--against", "older")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout + done.stderr
    assert "cannot run it" in text and "no base to compare with" in text and "Traceback" not in text


def test_a_worktree_a_killed_job_left_is_removed_by_the_next(tmp_path):
    from harness.measure import commits

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["-c", "user.email=l@x", "-c", "user.name=l", "commit", "-q", "--allow-empty",
                                  "-m", "one"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    left = tmp_path / "labs-backfill-dead"
    left.mkdir()
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(left / "abc"), "HEAD"], cwd=repo, check=True)
    (tmp_path / "labs-backfill-dead.pid").write_text("999999999")  # no such process
    alive = tmp_path / "labs-against-live"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(alive), "HEAD"], cwd=repo, check=True)
    (tmp_path / "labs-against-live.pid").write_text(str(os.getpid()))  # a job still running
    commits.reap_stale_worktrees(repo)
    listing = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert "labs-backfill-dead" not in listing and not left.exists()
    assert "labs-against-live" in listing and alive.exists()


def test_the_crossover_analysis_cancels_whichever_process_runs_first():
    """A machine where the first process of each pair runs 10 % slow: the plain paired test sees
    that as noise (the sign flips with the order); the AB/BA analysis removes it and finds +5 %."""
    rng = np.random.default_rng(21)
    orders = ["AB", "BA"] * 4
    position, effect = math.log(1.10), math.log(1.05)
    # d = log(candidate / base): base first (AB) makes the base slow, so d drops by the position effect
    d = [effect + (-position if o == "AB" else position) + rng.normal(0, 0.01) for o in orders]
    plain, crossed = paired.paired_test(d), paired.paired_test(d, orders)
    assert plain.p_slower > 0.05 and crossed.p_slower < 0.001
    assert abs(math.log(crossed.change) - effect) < 0.01 and crossed.sd < plain.sd / 3
