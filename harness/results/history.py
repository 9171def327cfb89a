"""A metric across stored runs of one scenario, in commit order, with regressions marked; and the
stored runs of a project read as series (one machine class), for change points and the dashboard."""
from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.present import charts
from harness.project import envinfo
from harness.results import compare, store
from harness.results.model import Result

METRICS = ("time", "ratio")
"""Besides these, any counter name (queries, cache_hits, ...) is a metric."""


@dataclass(frozen=True)
class History:
    scenario: str
    metric: str
    labels: tuple[str, ...]
    series: dict[str, list[float | None]]
    marks: dict[str, list[bool]]
    """series name -> per run: did this point regress against the previous run?"""


def commit_order(root: Path | None = None) -> dict[str, int]:
    root = root or envinfo.project_root()
    try:
        out = subprocess.run(["git", "rev-list", "--topo-order", "--reverse", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {sha: i for i, sha in enumerate(out)}


def collect(scenario: str | None, results_dir: Path, machine_class: str | None = None) -> list[Result]:
    """Complete runs of `scenario` (None: every scenario) from the results dir and its baselines,
    commit order then time; with `machine_class`, only runs of that class (another kind of machine
    is another series, never mixed in)."""
    from harness.results.trends import machine_class as class_of

    paths = store.list_runs(results_dir)
    base_root = results_dir / "baselines"
    if base_root.is_dir():
        for d in sorted(base_root.iterdir()):
            if d.is_dir() and not d.name.startswith("."):  # not a half-saved copy
                paths += store.list_runs(d)
    seen, runs = set(), []
    for p in paths:
        try:
            r = store.load(p)
        except UsageError:
            continue  # a broken file is not history
        if (scenario is None or r.scenario == scenario) and r.complete and r.run_id not in seen \
                and (machine_class is None or class_of(r) == machine_class):
            seen.add(r.run_id)
            runs.append(r)
    order = commit_order()
    runs.sort(key=lambda r: (order.get(r.env.get("git_sha") or "", len(order)), r.started_at))
    return runs


def by_scenario(runs: Sequence[Result]) -> dict[str, list[Result]]:
    """Runs grouped by scenario, each group restricted to the machine class of its newest run."""
    from harness.results.trends import machine_class

    groups: dict[str, list[Result]] = {}
    for r in runs:
        groups.setdefault(r.scenario, []).append(r)
    out = {}
    for name, group in groups.items():
        newest = max(group, key=lambda r: r.started_at)
        out[name] = [r for r in group if machine_class(r) == machine_class(newest)]
    return out


def dashboard(results_dir: Path, out_dir: Path) -> tuple[Path, list]:
    """The history dashboard of every scenario with stored runs: (page, findings)."""
    from harness.present import dashboard as dash
    from harness.results import trends

    groups = by_scenario(collect(None, results_dir))
    if not groups:
        raise UsageError(f"no complete runs in {results_dir}/ to make a history of", hint="labs run n_plus_one")
    items = [f for runs in groups.values() for f in trends.findings(runs)]
    out_dir.mkdir(parents=True, exist_ok=True)
    page = store.write_text_atomic(out_dir / "index.html", dash.page(groups, items, envinfo.project_root()))
    return page, items


def build(scenario: str, metric: str, runs: Sequence[Result], case: str | None = None,
          variant: str | None = None) -> History:
    if not runs:
        raise UsageError(f"no complete runs of {scenario} to chart", hint=f"labs run {scenario}")
    labels = tuple(f"{(r.env.get('git_sha') or '?')[:7]}{'+' if r.env.get('git_dirty') else ''} "
                   f"{r.started_at[5:16].replace('T', ' ')}" for r in runs)
    series: dict[str, list[float | None]] = {}
    marks: dict[str, list[bool]] = {}
    for i, run in enumerate(runs):
        for c in run.cases:
            if case and c.name != case:
                continue
            for v in c.variants.values():
                if variant and v.name != variant:
                    continue
                value = _value(metric, v)
                if value is None:
                    continue
                key = f"{c.name} · {v.name}"
                series.setdefault(key, [None] * len(runs))[i] = value
                marks.setdefault(key, [False] * len(runs))
    if not series:
        raise UsageError(f"metric {metric!r} not found in {scenario} runs "
                         f"(try time, ratio or a counter such as queries)")
    # regressions: each run against the one before it, with the same rules as `labs compare`
    for i in range(1, len(runs)):
        cmp = compare.compare("prev", [runs[i - 1]], "this", [runs[i]])
        for row in cmp.regressions:
            key = f"{row.case} · {row.variant}"
            if key in marks and row.metric == metric:
                marks[key][i] = True
    return History(scenario, metric, labels, series, marks)


def _value(metric: str, v) -> float | None:
    if v.skipped:
        return None
    if metric == "time":
        return v.median_s
    if metric == "ratio":
        return v.ratio
    if metric in v.counters:
        return v.counters[metric]
    value = v.metrics.get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def write(history: History, out_dir: Path) -> tuple[Path, Path]:
    """PNG + self-contained HTML (chart inlined, data table below)."""
    unit = {"time": "seconds per unit", "ratio": "time / baseline"}.get(history.metric, history.metric)
    fig = charts.history_figure(f"{history.scenario} · {history.metric} over runs (red rings: regressions)",
                                history.labels, history.series, history.marks, unit)
    stem = f"history-{history.scenario}-{history.metric}"
    png = charts.save_png(fig, out_dir / f"{stem}.png")
    rows = [[label, *[("—" if s[i] is None else f"{s[i]:.4g}") + (" ✗" if history.marks[k][i] else "")
                      for k, s in history.series.items()]] for i, label in enumerate(history.labels)]
    page = charts.html_page(f"{history.scenario}: {history.metric} over runs", png,
                            charts.html_table(["run", *history.series], rows))
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(page)
    return png, html_path
