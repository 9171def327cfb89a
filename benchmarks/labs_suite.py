"""asv suite generated from the scenario registry: no hand-written duplicates.

One class per scenario; `setup_cache` runs the scenario once through `labs run` (interleaved,
verified) and every `track_*` returns the harness's own numbers for a (case, variant) pair, so
asv's history charts show the same medians, ratios and counters as `labs show`.

Environment knobs (for tests and quick local use):
  LABS_ASV_PROFILE    quick (default) or full
  LABS_ASV_SCENARIOS  comma-separated subset of scenarios
  LABS_ASV_PARAMS     NAME=VALUE;NAME=VALUE passed as --param (e.g. books=3,5;catalog=30)
  LABS_ASV_SOURCE     a checkout of another commit (set by `labs asv backfill`): measure its code
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.project import registry

PROFILE = os.environ.get("LABS_ASV_PROFILE", "quick")


def _selected() -> list[str]:
    wanted = [s for s in os.environ.get("LABS_ASV_SCENARIOS", "").split(",") if s]
    return [n for n in registry.names() if not wanted or n in wanted]


def run_scenario_json(name: str) -> dict:
    """Run one scenario with the real harness (its own stack) and return the result document."""
    source = os.environ.get("LABS_ASV_SOURCE")
    env, cwd = None, None
    if source:  # that checkout's harness, app and scenarios come first on the path
        cwd = source
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="labs-asv-") as tmp:
        # `-m harness.cli`: also how commits older than `python -m harness` are started
        cmd = [sys.executable, "-m", "harness.cli", "run", name, "--profile", PROFILE, "--no-chart",
               "--no-lesson", "--results-dir", tmp]
        for key, value in _param_overrides(name).items():
            cmd += ["--param", f"{key}={value}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=cwd, env=env)
        files = sorted(Path(tmp).glob("*.json"))
        if not files:
            raise RuntimeError(f"labs run {name} wrote no result (exit {done.returncode}): {done.stderr[-2000:]}")
        return json.loads(files[-1].read_text())


def _cell(doc: dict, case: str, variant: str):
    for c in doc.get("cases", ()):
        if c["name"] == case:
            return c["variants"].get(variant)
    return None


def _make_suite(name: str) -> type:
    scenario = registry.get(name)
    cases = [c.name for c in scenario.cases(scenario.params_for(PROFILE, _param_overrides(name)))]
    variants = scenario.variant_names(PROFILE)

    def setup_cache(self):
        return run_scenario_json(name)

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
    return type(f"Scenario_{name}", (), attrs)


def _param_overrides(name: str) -> dict[str, str]:
    scenario = registry.get(name)
    out = {}
    for item in os.environ.get("LABS_ASV_PARAMS", "").split(";"):
        key, _, value = item.partition("=")
        if key.strip() in scenario.profile_params(PROFILE):
            out[key.strip()] = value.strip()
    return out


for _name in _selected():
    globals()[f"Scenario_{_name}"] = _make_suite(_name)
