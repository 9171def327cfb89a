"""Helpers for testing scenarios with pytest (public, like harness.scenario).

    from harness.testing import measure

    def test_fast_runs_one_query():
        result = measure("product_list")
        assert result.ok
        assert result.cases[0].variants["fixed"].counters["queries"] == 1

Tests assert the deterministic facts — query counts, same answers, checks — never timings: the
timing budget here is tiny on purpose.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.measure.runner import Budget, RunOptions
from harness.results.model import Result

TINY = Budget(min_rounds=3, max_rounds=5, case_s=0.05, sample_s=0.0005, warmup_s=0.0)
"""Enough rounds to run every variant, nowhere near enough to time anything."""


def measure(name: str, *, profile: str = "quick", params: Mapping[str, str] | None = None,
            stack: str = "embedded", results_dir: Path | None = None, budget: Budget = TINY) -> Result:
    """Run one scenario (built-in or the project's) on a stack of its own, at a tiny timing budget,
    under the settings the project gives it; returns the result (saved in a temporary folder)."""
    import tempfile

    from harness.project import registry
    from harness.project.registry import Project
    from harness.session import LabSession

    project = Project.resolve()
    scenario = registry.get(name)
    out = results_dir or Path(tempfile.mkdtemp(prefix="labs-test-"))
    with LabSession(stack=stack, project=project, results_dir=out) as session:
        opts = RunOptions((name,), profile, (), stack, str(out), params=dict(params or {}), budget=budget,
                          django_settings=project.settings_for(name))
        return session.run([scenario], opts)[0].result
