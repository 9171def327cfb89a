"""Compare two sets of results: per scenario, case, variant and metric, a verdict.

Verdicts come from the samples, never from two medians alone, AND a minimum effect size:
  time   — seconds per unit, new vs base: bootstrap interval of the ratio of medians (samples
           resampled independently). Absolute times move with the machine's mood, so its default
           threshold is wide.
  ratio  — the variant's time relative to its case baseline *within each run* (per-round paired
           ratios): what the code under test changed, mostly free of machine drift.
  counters (queries, rows, cache ops...) and exact metrics (stale reads) compare exactly: one
           extra query is a regression, always. A check that passed and now fails is one too.
A verdict is `slower`/`faster` only when the 95 % interval excludes 1 and the point estimate
moves past the threshold; `incomparable` when params or profile differ.
This module builds a `Comparison` value; renderers at the bottom turn it into text.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from harness.errors import UsageError
from harness.results import store
from harness.results.model import CaseResult, Result

DEFAULT_THRESHOLDS = {"time": 0.25, "ratio": 0.15}
REGRESSION_VERDICTS = {"slower", "worse", "failing", "changed"}
MACHINE_KEYS = ("cpus", "cpu_model")
"""Environment facts that make two runs' timings incomparable when they differ."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    fraction: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """'time:10%' or 'ratio:0.05' -> Threshold."""
        m = re.fullmatch(r"\s*(time|ratio)\s*:\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", text)
        if not m:
            raise UsageError(f"bad threshold {text!r}: expected METRIC:PERCENT with METRIC time or ratio, "
                             "e.g. --threshold time:10%")
        value = float(m.group(2)) / (100 if m.group(3) else 1)
        if not 0 < value < 10:
            raise UsageError(f"threshold {text!r} out of range (0 < t < 1000%)")
        return cls(m.group(1), value)

    def fails(self, change: float, ci: tuple[float, float]) -> bool:
        """True when `change` (new/base) is a real slowdown: the interval excludes 1 and the
        point estimate is past the threshold."""
        return ci[0] > 1.0 and change > 1.0 + self.fraction

    def improves(self, change: float, ci: tuple[float, float]) -> bool:
        return ci[1] < 1.0 and change < 1.0 / (1.0 + self.fraction)


@dataclass(frozen=True)
class Row:
    scenario: str
    case: str
    variant: str
    metric: str
    base: float | None
    new: float | None
    change: float | None = None
    """new / base for time and ratio; new - base for counters."""
    ci95: tuple[float, float] | None = None
    verdict: str = "unchanged"
    detail: str = ""

    @property
    def regressed(self) -> bool:
        return self.verdict in REGRESSION_VERDICTS


@dataclass(frozen=True)
class Comparison:
    base_label: str
    new_label: str
    rows: tuple[Row, ...]
    thresholds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regressed]

    @property
    def improvements(self) -> list[Row]:
        return [r for r in self.rows if r.verdict in {"faster", "better"}]


# -- loading the two sides ----------------------------------------------------------------------
def load_side(ref: str, results_dir: Path, relative_to: list[Result] | None = None) -> tuple[str, list[Result]]:
    """A run id/file/`latest`/`previous`, a baseline name, or a directory -> (label, results).

    `previous` means the run before the other side's run of the same scenario.
    """
    baseline_dir = results_dir / "baselines" / ref
    if baseline_dir.is_dir():
        results = [store.load(p) for p in store.list_runs(baseline_dir)]
        if not results:
            raise UsageError(f"baseline {ref!r} has no results", hint=f"labs baseline save {ref}")
        return f"baseline {ref}", results
    path = Path(ref)
    if path.is_dir():
        results = [store.load(p) for p in store.list_runs(path)]
        if not results:
            raise UsageError(f"no result files in {path}/")
        return str(path), _newest_per_scenario(results)
    if ref == "previous" and relative_to:
        scenarios = {r.scenario for r in relative_to}
        newest = max(r.run_id for r in relative_to)
        older = [store.load(p) for p in store.list_runs(results_dir) if p.stem < newest]
        older = [r for r in older if r.scenario in scenarios]
        if not older:
            raise UsageError(f"no earlier run of {', '.join(sorted(scenarios))} in {results_dir}/",
                             hint="run it again, then compare")
        return "previous", _newest_per_scenario(older)
    result = store.load(store.resolve(ref, results_dir))
    return result.run_id, [result]


def _newest_per_scenario(results: Iterable[Result]) -> list[Result]:
    newest: dict[str, Result] = {}
    for r in results:
        if r.scenario not in newest or r.run_id > newest[r.scenario].run_id:
            newest[r.scenario] = r
    return [newest[k] for k in sorted(newest)]


# -- statistics of a comparison (pure) ------------------------------------------------------------
def ratio_of_medians_ci(base: Sequence[float], new: Sequence[float], seed: int = 0,
                        n_resamples: int = 2000) -> tuple[float, tuple[float, float]]:
    """median(new)/median(base) and a bootstrap 95 % interval (independent resampling)."""
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    if b.size == 0 or n.size == 0:
        raise ValueError("no samples to compare")
    point = float(np.median(n) / np.median(b))
    rng = np.random.default_rng(seed)
    bs = np.median(b[rng.integers(0, b.size, (n_resamples, b.size))], axis=1)
    ns = np.median(n[rng.integers(0, n.size, (n_resamples, n.size))], axis=1)
    lo, hi = np.quantile(ns / bs, [0.025, 0.975])
    return point, (float(lo), float(hi))


def _verdict(change: float, ci: tuple[float, float], threshold: Threshold) -> str:
    if threshold.fails(change, ci):
        return "slower"
    if threshold.improves(change, ci):
        return "faster"
    return "unchanged"


def _round_ratios(case: CaseResult, variant: str) -> list[float]:
    base = case.variants[case.baseline].samples_s
    mine = case.variants[variant].samples_s
    return [m / b for m, b in zip(mine, base) if b > 0]


# -- the comparison --------------------------------------------------------------------------------
def compare(base_label: str, base: list[Result], new_label: str, new: list[Result],
            thresholds: Sequence[Threshold] = ()) -> Comparison:
    limits = dict(DEFAULT_THRESHOLDS)
    for t in thresholds:
        limits[t.metric] = t.fraction
    rows: list[Row] = []
    notes: list[str] = []
    base_runs: dict[str, list[Result]] = {}
    for r in sorted(base, key=lambda r: r.run_id):
        base_runs.setdefault(r.scenario, []).append(r)
    for result in new:
        runs = base_runs.get(result.scenario, [])
        old = runs[-1] if runs else None
        floors = noise_floors(runs)
        if len(runs) > 1:
            notes.append(f"{result.scenario}: {len(runs)} base runs — thresholds widened to twice the "
                         "spread seen between them where that is larger")
        if old is None:
            notes.append(f"{result.scenario}: no base result to compare with")
            continue
        if not old.complete or not result.complete:
            notes.append(f"{result.scenario}: an incomplete run is compared only on what it measured")
        if old.profile != result.profile:
            rows.append(Row(result.scenario, "*", "*", "profile", None, None, verdict="incomparable",
                            detail=f"profile {old.profile} vs {result.profile}"))
            continue
        machine = [k for k in MACHINE_KEYS if old.env.get(k) != result.env.get(k)]
        if machine:
            notes.append(f"{result.scenario}: measured on another machine ({', '.join(machine)} differ): timings are "
                         "incomparable; counters and checks are still compared exactly")
        for k in ("python", "django"):
            if old.env.get(k) != result.env.get(k):
                notes.append(f"{result.scenario}: {k} differs ({old.env.get(k)} vs {result.env.get(k)})")
        old_cases = {c.name: c for c in old.cases}
        for case in result.cases:
            prev = old_cases.get(case.name)
            if prev is None:
                rows.append(Row(result.scenario, case.name, "*", "case", None, None, verdict="new"))
                continue
            if prev.params != case.params:
                rows.append(Row(result.scenario, case.name, "*", "params", None, None, verdict="incomparable",
                                detail=f"params {prev.params} vs {case.params}"))
                continue
            rows += _compare_case(result.scenario, prev, case, limits, floors, timings=not machine,
                                  declared=(old, result))
    return Comparison(base_label, new_label, tuple(rows), limits, tuple(notes))


def noise_floors(runs: Sequence[Result]) -> dict[tuple[str, str, str], float]:
    """(case, variant, metric) -> twice the largest relative deviation between base runs (A/A spread).

    A baseline of several runs of the same code shows how far this machine moves a number on
    its own; a change smaller than that is not evidence, whatever the within-run interval says.
    """
    values: dict[tuple[str, str, str], list[float]] = {}
    for run in runs:
        for case in run.cases:
            for v in case.variants.values():
                for metric, value in (("time", v.median_s), ("ratio", v.ratio)):
                    if value:
                        values.setdefault((case.name, v.name, metric), []).append(value)
    return {key: 2 * (max(vs) / min(vs) - 1) for key, vs in values.items() if len(vs) > 1}


def _limit(limits: dict[str, float], floors: dict, case: str, variant: str, metric: str) -> Threshold:
    return Threshold(metric, max(limits[metric], floors.get((case, variant, metric), 0.0)))


def _compare_case(scenario: str, prev: CaseResult, case: CaseResult, limits: dict[str, float],
                  floors: dict | None = None, timings: bool = True,
                  declared: tuple[Result, Result] | None = None) -> list[Row]:
    """`timings=False` (another machine): time and ratio rows are `incomparable`, counters exact.
    `declared`: the (base, new) results whose metric declarations say what compares how."""
    floors = floors or {}
    from harness.measure.metrics import undeclared

    def metric(name: str, counter: bool):
        for r in reversed(declared or ()):  # the new run's declaration wins
            if name in r.metrics:
                return r.metric(name)
        return undeclared(name, counter)
    rows: list[Row] = []
    for name, v in case.variants.items():
        old = prev.variants.get(name)
        if old is None or old.skipped or v.skipped:
            if old is None or bool(old.skipped) != bool(v.skipped):
                rows.append(Row(scenario, case.name, name, "variant", None, None, verdict="incomparable",
                                detail=f"skipped: {old.skipped if old else 'absent'} vs {v.skipped}"))
            continue
        if not timings:
            rows.append(Row(scenario, case.name, name, "time", old.median_s, v.median_s, verdict="incomparable",
                            detail="another machine"))
        elif old.samples_s and v.samples_s:
            change, ci = ratio_of_medians_ci(old.samples_s, v.samples_s)
            rows.append(Row(scenario, case.name, name, "time", old.median_s, v.median_s, change, ci,
                            _verdict(change, ci, _limit(limits, floors, case.name, name, "time"))))
        if timings and name != case.baseline and prev.baseline == case.baseline and old.samples_s and v.samples_s:
            change, ci = ratio_of_medians_ci(_round_ratios(prev, name), _round_ratios(case, name))
            rows.append(Row(scenario, case.name, name, "ratio", old.ratio, v.ratio, change, ci,
                            _verdict(change, ci, _limit(limits, floors, case.name, name, "ratio"))))
        for key in sorted(set(old.counters) | set(v.counters)):
            m = metric(key, counter=True)
            if m.kind == "exact":
                rows.append(_exact(scenario, case.name, name, m, old.counters.get(key, 0.0), v.counters.get(key, 0.0)))
        for key in sorted(set(old.metrics) | set(v.metrics)):
            m = metric(key, counter=False)
            if m.kind == "exact":
                rows.append(_exact(scenario, case.name, name, m, old.metrics.get(key), v.metrics.get(key)))
    old_checks = {(c.variant, c.name): c for c in prev.checks}
    for c in case.checks:
        before = old_checks.get((c.variant, c.name))
        if not c.ok and not c.skipped:
            rows.append(Row(scenario, case.name, c.variant, f"check: {c.name}", None, None,
                            verdict="failing", detail=c.detail
                            + ("" if before is None or not before.ok else " (passed in base)")))
    return rows


def _exact(scenario: str, case: str, variant: str, m, old, new) -> Row:
    """An exact metric: any change is a verdict (beyond the declared relative tolerance); which way
    is worse comes from its declaration. Text values (a plan's top node) compare as equal or not."""
    key = m.name
    if old is None or new is None:
        return Row(scenario, case, variant, key, _num(old), _num(new), verdict="incomparable",
                   detail="missing on one side")
    if not isinstance(old, (int, float)) or not isinstance(new, (int, float)) or isinstance(old, bool):
        if old == new:
            return Row(scenario, case, variant, key, None, None, 0.0, detail=str(new))
        return Row(scenario, case, variant, key, None, None, verdict="changed", detail=f"{old!r} → {new!r}")
    if round(old, 9) == round(new, 9):
        return Row(scenario, case, variant, key, old, new, 0.0)
    if m.tolerance and abs(new - old) <= m.tolerance * max(abs(old), 1e-12):
        return Row(scenario, case, variant, key, old, new, new - old,
                   detail=f"within the declared ±{m.tolerance:.0%}")
    if m.better is None:
        return Row(scenario, case, variant, key, old, new, new - old, verdict="changed",
                   detail="exact metric with no better direction")
    worse = (new < old) if m.better == "higher" else (new > old)
    return Row(scenario, case, variant, key, old, new, new - old, verdict="worse" if worse else "better",
               detail="counters compare exactly" + (f" (tolerance ±{m.tolerance:.0%})" if m.tolerance else ""))


def _num(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def confirm(first: Comparison, again: Comparison) -> Comparison:
    """Keep a time/ratio regression only if an independent re-run regressed the same way.

    Noise on these machines comes in phases: one run can land in a slow one. Counters and
    checks are exact and need no confirmation; timings do. An unconfirmed regression stays
    visible with the verdict `unconfirmed`.
    """
    repeated = {(r.scenario, r.case, r.variant, r.metric) for r in again.regressions}
    rows = []
    for r in first.rows:
        if r.regressed and r.metric in {"time", "ratio"} and (r.scenario, r.case, r.variant, r.metric) not in repeated:
            r = replace(r, verdict="unconfirmed", detail="not reproduced by the confirmation run")
        rows.append(r)
    return replace(first, rows=tuple(rows), notes=first.notes + (
        f"time/ratio regressions re-measured in {again.new_label}",))


# -- renderers -----------------------------------------------------------------------------------
def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    if metric == "time":
        from harness.present.fmt import fmt_time

        return fmt_time(value)
    if metric == "ratio":
        return f"{value:.4g}"
    return f"{value:.4g}"


def _change(row: Row) -> str:
    if row.change is None:
        return ""
    if row.metric in {"time", "ratio"}:
        text = f"{(row.change - 1) * 100:+.1f}%"
        if row.ci95:
            text += f" [{(row.ci95[0] - 1) * 100:+.1f}%, {(row.ci95[1] - 1) * 100:+.1f}%]"
        return text
    return f"{row.change:+.4g}" if row.change else "="


def interesting(comparison: Comparison, everything: bool = False) -> list[Row]:
    """Rows worth showing: all of them, or only those that moved or could not be compared."""
    if everything:
        return list(comparison.rows)
    return [r for r in comparison.rows if r.verdict != "unchanged"]


def summary_line(comparison: Comparison) -> str:
    n_reg, n_imp = len(comparison.regressions), len(comparison.improvements)
    counted = len(comparison.rows)
    if n_reg:
        return f"REGRESSION: {n_reg} of {counted} comparisons got worse ({n_imp} improved)"
    return f"no regression: {counted} comparisons, {n_imp} improved"


def to_markdown(comparison: Comparison, everything: bool = False) -> str:
    th = ", ".join(f"{k} {v * 100:g}%" for k, v in sorted(comparison.thresholds.items()))
    lines = [f"### labs compare: {comparison.base_label} → {comparison.new_label}", "",
             f"**{summary_line(comparison)}** (thresholds: {th}; counters exact)", ""]
    rows = interesting(comparison, everything)
    if rows:
        lines += ["| scenario | case | variant | metric | base | new | change [95% CI] | verdict |",
                  "| --- | --- | --- | --- | ---: | ---: | --- | --- |"]
        for r in rows:
            verdict = f"**{r.verdict}**" if r.regressed else r.verdict
            detail = f" ({r.detail})" if r.detail and r.verdict in {"incomparable", "failing", "unconfirmed"} else ""
            lines.append(f"| {r.scenario} | {r.case} | {r.variant} | {r.metric} | {_fmt(r.base, r.metric)} | "
                         f"{_fmt(r.new, r.metric)} | {_change(r)} | {verdict}{detail} |")
    else:
        lines.append("Nothing moved beyond the thresholds.")
    for note in comparison.notes:
        lines.append(f"\n> {note}")
    return "\n".join(lines) + "\n"


def to_json(comparison: Comparison) -> str:
    data = asdict(comparison)
    data["regressions"] = len(comparison.regressions)
    data["improvements"] = len(comparison.improvements)
    return json.dumps(data, indent=1, default=list)


def to_table(comparison: Comparison, everything: bool = False):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{comparison.base_label} → {comparison.new_label}", title_justify="left")
    for col in ("scenario", "case", "variant", "metric", "base", "new", "change [95% CI]", "verdict"):
        table.add_column(col, no_wrap=col not in {"case"}, justify="right" if col in {"base", "new"} else "left")
    for r in interesting(comparison, everything):
        style = "bold red" if r.regressed else ("green" if r.verdict in {"faster", "better"} else
                                                "yellow" if r.verdict == "incomparable" else "")
        table.add_row(r.scenario, r.case, r.variant, r.metric, _fmt(r.base, r.metric), _fmt(r.new, r.metric),
                      _change(r), Text(r.verdict + (f" ({r.detail})" if r.verdict in {"incomparable", "failing"}
                                                     and r.detail else ""), style=style))
    return table
