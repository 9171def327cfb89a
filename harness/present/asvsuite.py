"""The asv suite of a project's Perf Lab scenarios, generated from its scenario registry.

One class per scenario; `setup_cache` runs the scenario once through `labs run` (interleaved,
verified — only a complete run whose checks passed enters the history) and every `track_*`
returns the harness's own numbers for a (case, variant) pair: time, ratio, queries, and each
metric the scenario declares (not `info`), in its declared unit. A project's
benchmarks/perflab_suite.py (`labs asv init` writes it) is two lines:

    from harness.present.asvsuite import suite
    globals().update(suite(Path(__file__).resolve().parents[1]))

Environment knobs (for tests and quick local use):
  LABS_ASV_PROFILE    quick (default), nightly or full
  LABS_ASV_SCENARIOS  comma-separated subset of scenarios
  LABS_ASV_PARAMS     NAME=VALUE;NAME=VALUE passed as --param (e.g. books=3,5;catalog=30)
  LABS_ASV_SOURCE     a checkout of another commit (set by `labs asv backfill`): measure its code
  LABS_ASV_KEEP_RESULTS  a results directory to copy each lab result into (set by `labs asv backfill`)
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def profile() -> str:
    return os.environ.get("LABS_ASV_PROFILE", "quick")


def suite(root: Path) -> dict[str, type]:
    """Scenario classes for asv, from the registry of the project at `root` (its labs.toml)."""
    from harness.project import registry

    previous = Path.cwd()
    os.chdir(root)  # the registry is the project's: its labs.toml, its scenario paths
    try:
        wanted = [s for s in os.environ.get("LABS_ASV_SCENARIOS", "").split(",") if s]
        return {f"Scenario_{name}": _make_suite(name, root) for name in registry.names()
                if not wanted or name in wanted}
    finally:
        os.chdir(previous)


def run_scenario_json(name: str, root: Path) -> dict:
    """Run one scenario with the real harness (its own stack) and return the result document.

    It runs in the project's repository (`root`, where its labs.toml is), or in the checkout of
    another commit that `labs asv backfill` made (LABS_ASV_SOURCE): that checkout's code comes
    first on the path — the project's scenarios and app, and the harness too when the repository is
    the lab's own."""
    source = os.environ.get("LABS_ASV_SOURCE")
    env, cwd = None, str(root)
    if source:
        cwd = source
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="labs-asv-") as tmp:
        # `-m harness.cli`: also how commits older than `python -m harness` are started
        cmd = [sys.executable, "-m", "harness.cli", "run", name, "--profile", profile(), "--no-chart",
               "--no-lesson", "--results-dir", tmp]
        for key, value in _param_overrides(name).items():
            cmd += ["--param", f"{key}={value}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=cwd, env=env)
        files = sorted(Path(tmp).glob("*.json"))
        if not files:
            raise RuntimeError(f"labs run {name} wrote no result (exit {done.returncode}): {done.stderr[-2000:]}")
        doc = json.loads(files[-1].read_text())
        keep = os.environ.get("LABS_ASV_KEEP_RESULTS")
        if keep:  # `labs asv backfill` keeps the lab's own record of this commit for `labs history`
            from harness.results.store import write_text_atomic

            write_text_atomic(Path(keep) / files[-1].name, files[-1].read_text())
        return verified(doc, done.returncode, name)


def verified(doc: dict, returncode: int, name: str) -> dict:
    """Only a complete run whose checks all passed enters the history: asv records a failure for
    anything else (a fast wrong answer, or half a run, is not a point on the chart)."""
    if returncode != 0 or not doc.get("complete") or doc.get("ok") is False:
        failed = [f"{c['variant']}: {c['name']}" for case in doc.get("cases", ()) for c in case.get("checks", ())
                  if not c.get("ok") and not c.get("skipped")]
        why = (f"incomplete ({doc.get('reason')})" if not doc.get("complete") else
               f"checks failed: {'; '.join(failed[:5])}" if failed else f"exit {returncode}")
        raise RuntimeError(f"labs run {name} is not a verified result: {why}")
    return doc


def _cell(doc: dict, case: str, variant: str):
    for c in doc.get("cases", ()):
        if c["name"] == case:
            return c["variants"].get(variant)
    return None


def _make_suite(name: str, root: Path) -> type:
    from harness.project import registry

    scenario = registry.get(name)
    cases = [c.name for c in scenario.cases(scenario.params_for(profile(), _param_overrides(name)))]
    variants = scenario.variant_names(profile())

    def setup_cache(self):
        return run_scenario_json(name, root)

    def track_time(self, doc, case, variant):
        v = _cell(doc, case, variant)
        return v["median_s"] if v and v.get("median_s") else math.nan

    def track_ratio(self, doc, case, variant):
        v = _cell(doc, case, variant)
        return v["ratio"] if v and v.get("ratio") else math.nan

    def track_queries(self, doc, case, variant):
        v = _cell(doc, case, variant)
        return v["counters"].get("queries", math.nan) if v and not v.get("skipped") else math.nan

    track_time.unit = "seconds"
    track_ratio.unit = "time / baseline"
    track_queries.unit = "queries"
    attrs = {
        "__doc__": scenario.title,
        "params": [cases, variants],
        "param_names": ["case", "variant"],
        "timeout": 1800,
        "setup_cache": setup_cache,
        "track_time": track_time,
        "track_ratio": track_ratio,
        "track_queries": track_queries,
    }
    for metric in scenario.metrics:  # what the scenario declares, in its own unit
        if metric.kind != "info":
            attrs[f"track_{metric.name}"] = _tracker(metric)
    return type(f"Scenario_{name}", (), attrs)


def _tracker(metric):
    def track(self, doc, case, variant):
        v = _cell(doc, case, variant)
        if not v or v.get("skipped"):
            return math.nan
        value = v.get("metrics", {}).get(metric.name, v.get("counters", {}).get(metric.name))
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    track.unit = metric.unit or metric.header
    return track


def _param_overrides(name: str) -> dict[str, str]:
    from harness.project import registry

    scenario = registry.get(name)
    out = {}
    for item in os.environ.get("LABS_ASV_PARAMS", "").split(";"):
        key, _, value = item.partition("=")
        if key.strip() in scenario.profile_params(profile()):
            out[key.strip()] = value.strip()
    return out
