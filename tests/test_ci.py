"""`labs ci` end to end with real runs: summary, charts, baseline comparison, exit codes."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from harness.results import store

pytestmark = pytest.mark.stack


def _labs(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, cwd=cwd)


def test_ci_without_then_with_a_baseline(tmp_path, runtime_dir):
    results, out = tmp_path / "results", tmp_path / "ci-out"
    summary_file = tmp_path / "step-summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary_file)}
    first = _labs("ci", "--scenario", "n_plus_one", "--results-dir", str(results), "--out-dir", str(out), env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    assert "No baseline `main` yet" in summary and "n_plus_one" in summary
    assert summary_file.read_text() == summary
    assert list(out.glob("*.png"))

    saved = _labs("baseline", "save", "main", "--results-dir", str(results))
    assert saved.returncode == 0, saved.stderr

    # Make the baseline twice as fast on paper: this run's timings regress for real, the
    # confirmation run (same stack, same process) reproduces it, counters stay identical.
    (base_file,) = store.list_runs(results / "baselines" / "main")
    doc = json.loads(base_file.read_text())
    for case in doc["cases"]:
        for v in case["variants"].values():
            v["samples_s"] = [x / 2 for x in v["samples_s"]]
            v["median_s"] /= 2
            v["process_medians_s"] = [x / 2 for x in v["process_medians_s"]]
    base_file.write_text(json.dumps(doc))
    # the edit is deliberate: the manifest is rewritten, as a new `baseline save` would
    manifest = results / "baselines" / "main" / store.MANIFEST
    manifest.write_text(json.dumps({"files": {base_file.name: hashlib.sha256(base_file.read_bytes()).hexdigest()}}))
    second = _labs("ci", "--scenario", "n_plus_one", "--results-dir", str(results), "--out-dir", str(out))
    assert second.returncode == 1, second.stderr[-3000:]
    assert "re-running to confirm" in second.stderr and "regression(s) against baseline main" in second.stderr
    summary = (out / "summary.md").read_text()
    assert "### labs compare: baseline main → this run" in summary
    assert "| time |" in summary and "**slower**" in summary
    # same code: counters and checks never regress
    assert "**worse**" not in summary and "**failing**" not in summary
    assert "Traceback" not in second.stderr


def test_ci_bad_suite_is_a_usage_error(tmp_path):
    res = _labs("ci", "--suite", "nighty", "--results-dir", str(tmp_path))
    assert res.returncode == 2 and "did you mean nightly?" in res.stderr
