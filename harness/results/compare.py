"""Compare two sets of results: per scenario, case, variant and metric, a verdict.

Timings (time per unit, and the ratio to the case baseline within each run) are judged against
the noise of their own row (harness.results.noise): between processes within runs, and between
runs over the baseline's runs and a window of stored history. Each row gets a p-value; the
p-values of all timing rows are corrected together (Holm: the chance of *any* false alarm in the
comparison stays under alpha), and a verdict `slower`/`faster` needs both a corrected p below
alpha and a change past the minimum effect. When no window of runs exists yet, the between-run
part is unknown and the minimum effects are wide (time 25 %, ratio 15 %).

Counters and exact metrics (declared by their scenario) compare exactly, or within a declared
tolerance: one extra query is a regression, always. A check that fails, or that vanished since the
base run, is one too; so is an incomplete new run. This module builds a `Comparison` value;
harness.present.comparison renders it.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist

from harness.errors import UsageError
from harness.measure import stats
from harness.results import store
from harness.results.model import CaseResult, Result, VariantResult
from harness.results.noise import Estimate, test_change

DEFAULT_THRESHOLDS = {"time": 0.25, "ratio": 0.15}
"""Minimum effects when a row's between-run noise is unknown (no window of runs)."""
NOISE_THRESHOLDS = {"time": 0.05, "ratio": 0.03}
"""Minimum effects when the gate is sized by measured between-run noise."""
ALPHA = 0.05
"""Family-wise false-alarm rate over all timing rows of one comparison."""
HISTORY_WINDOW = 10
REGRESSION_VERDICTS = {"slower", "worse", "failing", "changed", "vanished", "incomplete"}
MACHINE_KEYS = ("cpus", "cpu_model")
"""Environment facts that make two runs' timings incomparable when they differ."""
TIMING = ("time", "ratio")
LATENCY = {"p95": 95.0, "p99": 99.0}
"""Tail latencies of load variants, compared from their per-burst HDR histograms."""
LATENCY_THRESHOLD = 0.25
"""Minimum effect of a p95/p99 verdict: its interval covers the bursts of one run each side, not
the between-run noise (which a tail moves with most), so the gate is wide unless you set it."""
RELATIVE = (*TIMING, *(f"{k}_ms" for k in LATENCY))
"""Rows whose change is new / base (shown in percent)."""


@dataclass(frozen=True)
class Threshold:
    """A minimum effect: a timing change smaller than this is never a verdict, however certain."""

    metric: str
    fraction: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """'time:10%' or 'ratio:0.05' -> Threshold."""
        m = re.fullmatch(r"\s*(time|ratio|p95|p99)\s*:\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", text)
        if not m:
            raise UsageError(f"bad threshold {text!r}: expected METRIC:PERCENT with METRIC time, ratio, p95 or "
                             "p99, e.g. --threshold time:10%")
        value = float(m.group(2)) / (100 if m.group(3) else 1)
        if not 0 < value < 10:
            raise UsageError(f"threshold {text!r} out of range (0 < t < 1000%)")
        return cls(m.group(1), value)

    def fails(self, change: float, ci: tuple[float, float]) -> bool:
        """A slowdown past this minimum effect whose interval excludes 1."""
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
    p: float | None = None
    """Timing rows: p-value after the correction for many comparisons."""
    noise: float | None = None
    """Timing rows: how much one run of this row moves on its own (relative)."""

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
    alpha: float = ALPHA
    method: str = ""
    """How timing rows were judged, when not the stored-run gate (the paired one says so)."""

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regressed]

    @property
    def improvements(self) -> list[Row]:
        return [r for r in self.rows if r.verdict in {"faster", "better"}]


# -- loading the two sides and the history ------------------------------------------------------
def load_side(ref: str, results_dir: Path, relative_to: list[Result] | None = None) -> tuple[str, list[Result]]:
    """A run id/file/`latest`/`previous`, a baseline name, or a directory -> (label, results).

    `previous` means the run before the other side's run of the same scenario."""
    baseline_dir = results_dir / "baselines" / ref
    is_name = "/" not in ref and ref not in {"", ".", ".."}  # a path is a directory of runs, not a baseline
    if is_name:
        store.recover_baseline(baseline_dir)
    if is_name and baseline_dir.is_dir():
        results = store.load_many(store.baseline_runs(baseline_dir))
        if not results:
            raise UsageError(f"baseline {ref!r} has no results", hint=f"labs baseline save {ref}")
        return f"baseline {ref}", results
    path = Path(ref)
    if path.is_dir():
        results = store.load_many(store.list_runs(path))
        if not results:
            raise UsageError(f"no result files in {path}/")
        return str(path), _newest_per_scenario(results)
    if ref == "previous" and relative_to:
        scenarios = {r.scenario for r in relative_to}
        newest = max(r.run_id for r in relative_to)
        older = store.load_many(p for p in store.list_runs(results_dir) if p.stem < newest)
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


def load_history(results_dir: Path, new: Sequence[Result], window: int = HISTORY_WINDOW) -> list[Result]:
    """Stored complete runs of the new runs' scenarios (same profile, same machine), before them:
    the last `window` of each. They tell how much each row moves from run to run."""
    from harness.results.trends import machine_class

    wanted = {(r.scenario, r.profile, machine_class(r)): r.run_id for r in new}
    skip = {r.run_id for r in new}
    found: dict[tuple, list[Result]] = {}
    for path in store.list_runs(results_dir):
        try:
            r = store.load(path)
        except UsageError:
            continue  # a broken file is not history
        key = (r.scenario, r.profile, machine_class(r))
        if key in wanted and r.complete and r.run_id not in skip and r.run_id < wanted[key]:
            found.setdefault(key, []).append(r)
    return [r for runs in found.values() for r in sorted(runs, key=lambda x: x.run_id)[-window:]]


# -- estimates of a timing row -------------------------------------------------------------------------
def estimate(run: Result, case: CaseResult, variant: str, metric: str) -> Estimate | None:
    """One run's estimates of a row, per process (its `statistic` for ratios, medians for times)."""
    v = case.variants.get(variant)
    if v is None or v.skipped:
        return None
    if metric == "time":
        values = v.process_medians_s or ((v.median_s,) if v.median_s else ())
    else:
        values = v.process_ratios or ((v.ratio,) if v.ratio else ())
    values = tuple(x for x in values if x and x > 0)
    if not values:
        return None
    return Estimate(run.run_id, values, _within_se(case, v, metric) if len(values) == 1 else None)


def _within_se(case: CaseResult, v: VariantResult, metric: str) -> float | None:
    """A single process's standard error of its log estimate, from its rounds: the interval of
    the case's statistic (order statistics of the median, or the paired bootstrap of a ratio of
    totals), turned into a standard error."""
    from harness.measure.summary import ratio_interval

    base = case.variants.get(case.baseline)
    if len(v.samples_s) < 3:
        return None
    if metric == "ratio":
        if base is None or len(base.samples_s) != len(v.samples_s):
            return None
        iv = ratio_interval(v.samples_s, base.samples_s, case.timing.get("statistic", "median_ratio"))
    else:
        iv = stats.median_interval(v.samples_s)
    if iv.lo <= 0 or not iv.level:
        return None
    z = NormalDist().inv_cdf(0.5 + iv.level / 2)
    return (math.log(iv.hi) - math.log(iv.lo)) / (2 * z) if z > 0 else None


# -- the comparison --------------------------------------------------------------------------------
def compare(base_label: str, base: list[Result], new_label: str, new: list[Result],
            thresholds: Sequence[Threshold] = (), history: Sequence[Result] = (), alpha: float = ALPHA) -> Comparison:
    """Every row of the new runs against the base runs; `history` sizes each timing row's gate."""
    user = {t.metric: t.fraction for t in thresholds}
    rows: list[Row] = []
    notes: list[str] = []
    base_runs: dict[str, list[Result]] = {}
    for r in sorted(base, key=lambda r: r.run_id):
        base_runs.setdefault(r.scenario, []).append(r)
    hist: dict[str, list[Result]] = {}
    for r in history:
        hist.setdefault(r.scenario, []).append(r)
    pending: list[tuple[int, object]] = []  # (row index, noise test) of timing rows
    for result in new:
        runs = [r for r in base_runs.get(result.scenario, [])]
        if not result.complete:
            rows.append(Row(result.scenario, "*", "*", "run", None, None, verdict="incomplete",
                            detail=f"the new run is incomplete: {result.reason or 'unknown reason'}; what it did "
                                   "not measure cannot pass"))
        if not runs:
            notes.append(f"{result.scenario}: no base result to compare with")
            continue
        incomplete = [r.run_id for r in runs if not r.complete]
        if incomplete:
            notes.append(f"{result.scenario}: warning: base run(s) {', '.join(incomplete)} are incomplete; "
                         "compared only on what they measured")
        complete_runs = [r for r in runs if r.complete] or runs
        old = complete_runs[-1]
        if old.profile != result.profile:
            rows.append(Row(result.scenario, "*", "*", "profile", None, None, verdict="incomparable",
                            detail=f"profile {old.profile} vs {result.profile}"))
            continue
        if old.env.get("machine_class") and result.env.get("machine_class"):
            # LABS_MACHINE_CLASS names the kind of machine and wins over the CPU model string (CI
            # runners of one kind report varying model strings; two kinds may share one)
            machine = ["machine class"] if old.env["machine_class"] != result.env["machine_class"] else []
        else:
            machine = [k for k in MACHINE_KEYS if old.env.get(k) != result.env.get(k)]
        if machine:
            notes.append(f"{result.scenario}: measured on another machine ({', '.join(machine)} differ): timings are "
                         "incomparable; counters and checks are still compared exactly")
        for k in ("python", "django"):
            if old.env.get(k) != result.env.get(k):
                notes.append(f"{result.scenario}: {k} differs ({old.env.get(k)} vs {result.env.get(k)})")
        if len(complete_runs) > 1:
            notes.append(f"{result.scenario}: {len(complete_runs)} base runs: their spread is part of each row's noise")
        rows += _vanished(result.scenario, old, result)
        for case in result.cases:
            prev = next((c for c in old.cases if c.name == case.name), None)
            if prev is None:
                rows.append(Row(result.scenario, case.name, "*", "case", None, None, verdict="new"))
                continue
            if prev.params != case.params:
                rows.append(Row(result.scenario, case.name, "*", "params", None, None, verdict="incomparable",
                                detail=f"params {prev.params} vs {case.params}"))
                continue
            if not machine:
                for variant in case.variants:
                    for metric in TIMING:
                        row, test = _timing_row(result, case, variant, metric, complete_runs,
                                                hist.get(result.scenario, []))
                        if row is not None:
                            rows.append(row)
                            if test is not None:
                                pending.append((len(rows) - 1, test))
                rows += _latency_rows(result.scenario, prev, case, user)
            else:
                rows += [Row(result.scenario, case.name, v, "time", None, None, verdict="incomparable",
                             detail="another machine") for v, x in case.variants.items() if not x.skipped]
            rows += _exact_rows(result.scenario, prev, case, (old, result))
    rows = _judge(rows, pending, user, alpha)
    limits = {m: user.get(m, NOISE_THRESHOLDS[m]) for m in TIMING}
    if any(not t.between_runs for _i, t in pending):
        limits = {m: user.get(m, DEFAULT_THRESHOLDS[m]) for m in TIMING} | {
            f"{m} (noise known)": user.get(m, NOISE_THRESHOLDS[m]) for m in TIMING}
        notes.append("rows without a window of runs (fewer than 2 stored runs of this machine, profile and "
                     "parameters) are judged on within-run noise with wide minimum effects; keep history "
                     "(results/) or save a baseline of several runs (labs baseline save NAME --runs 3)")
    return Comparison(base_label, new_label, tuple(rows), limits, tuple(notes), alpha)


def _timing_row(result: Result, case: CaseResult, variant: str, metric: str, base_runs: Sequence[Result],
                history: Sequence[Result]):
    """(row, noise test) for one timing row; (None, None) when there is nothing to compare."""
    v = case.variants[variant]
    if v.skipped or (metric == "ratio" and variant == case.baseline):
        return None, None
    new_est = estimate(result, case, variant, metric)
    base_est, base_values = [], []
    for run in base_runs:
        prev = next((c for c in run.cases if c.name == case.name and c.params == case.params), None)
        if prev is None or variant not in prev.variants or prev.variants[variant].skipped:
            continue
        if metric == "ratio" and prev.baseline != case.baseline:
            continue
        e = estimate(run, prev, variant, metric)
        if e is not None:
            base_est.append(e)
            base_values.append(prev.variants[variant].median_s if metric == "time" else prev.variants[variant].ratio)
    if new_est is None or not base_est:
        return None, None
    hist_est = []
    for run in history:
        prev = next((c for c in run.cases if c.name == case.name and c.params == case.params), None)
        if prev is not None and variant in prev.variants:
            e = estimate(run, prev, variant, metric)
            if e is not None:
                hist_est.append(e)
    test = test_change(base_est, new_est, hist_est)
    new_value = v.median_s if metric == "time" else v.ratio
    base_value = math.exp(sum(math.log(x) for x in base_values if x) / len(base_values))
    row = Row(result.scenario, case.name, variant, metric, base_value, new_value, test.change, test.ci,
              noise=test.run_cv, detail=test.basis)
    return row, test


def _judge(rows: list[Row], pending: list[tuple[int, object]], user: dict[str, float], alpha: float) -> list[Row]:
    """Holm-correct the timing rows' p-values together, then give each its verdict."""
    if not pending:
        return rows
    adjusted = stats.holm([t.p for _i, t in pending])
    out = list(rows)
    for (i, test), p in zip(pending, adjusted):
        row = out[i]
        m = user.get(row.metric, (NOISE_THRESHOLDS if test.between_runs else DEFAULT_THRESHOLDS)[row.metric])
        verdict = "unchanged"
        if p < alpha and test.change > 1 + m:
            verdict = "slower"
        elif p < alpha and test.change < 1 / (1 + m):
            verdict = "faster"
        out[i] = replace(row, p=p, verdict=verdict,
                         detail=f"{row.detail}; noise ±{test.run_cv:.1%} per run; p={p:.2g} (Holm); "
                                f"minimum effect {m:.0%}")
    return out


def _latency_rows(scenario: str, prev: CaseResult, case: CaseResult, user: dict[str, float]) -> list[Row]:
    """p95 and p99 of each load variant: the bursts' histograms merged on each side; the interval
    of new/base from a bootstrap that resamples whole bursts on both sides."""
    from harness.measure import latency

    rows = []
    for name, v in case.variants.items():
        old = prev.variants.get(name)
        new_h, old_h = v.metrics.get("latency_hdr"), old.metrics.get("latency_hdr") if old else None
        if not new_h or not old_h or v.skipped or old.skipped:
            continue
        for key, q in LATENCY.items():
            b = latency.merge(old_h).get_value_at_percentile(q) / 1000
            n = latency.merge(new_h).get_value_at_percentile(q) / 1000
            if b <= 0 or n <= 0:
                continue
            ci = latency.bootstrap_ratio(old_h, new_h, q)
            m = user.get(key, LATENCY_THRESHOLD)
            change = n / b
            verdict = "unchanged"
            if ci is not None and ci[0] > 1 and change > 1 + m:
                verdict = "slower"
            elif ci is not None and ci[1] < 1 and change < 1 / (1 + m):
                verdict = "faster"
            rows.append(Row(scenario, case.name, name, f"{key}_ms", round(b, 3), round(n, 3), change, ci,
                            verdict=verdict,
                            detail=f"bootstrap over {len(old_h)}+{len(new_h)} bursts (within runs); minimum effect "
                                   f"{m:.0%}" if ci else "one burst a side: no interval, no verdict"))
    return rows


def _vanished(scenario: str, old: Result, new: Result) -> list[Row]:
    """What the base run measured and the new one no longer does: a vanished check is how a
    regression hides, so it fails the comparison; a vanished case or variant is reported."""
    rows = []
    if not new.complete:
        return rows  # the incomplete row says it already
    new_cases = {c.name: c for c in new.cases}
    for prev in old.cases:
        case = new_cases.get(prev.name)
        if case is None:
            rows.append(Row(scenario, prev.name, "*", "case", None, None, verdict="missing",
                            detail="measured in the base run, not in the new one"))
            continue
        for name in prev.variants:
            if name not in case.variants:
                rows.append(Row(scenario, prev.name, name, "variant", None, None, verdict="missing",
                                detail="measured in the base run, not in the new one"))
        now = {(c.variant, c.name) for c in case.checks}
        for c in prev.checks:
            if (c.variant, c.name) not in now and c.variant in case.variants:
                rows.append(Row(scenario, prev.name, c.variant, f"check: {c.name}", None, None, verdict="vanished",
                                detail="checked in the base run, no longer checked: a regression can hide here"))
    return rows


def _exact_rows(scenario: str, prev: CaseResult, case: CaseResult, declared: tuple[Result, Result]) -> list[Row]:
    """Counters and exact metrics (by their declarations), and failing checks."""
    from harness.measure.metrics import undeclared

    def metric(name: str, counter: bool):
        for r in reversed(declared):  # the new run's declaration wins
            if name in r.metrics:
                return r.metric(name)
        return undeclared(name, counter)

    rows: list[Row] = []
    for name, v in case.variants.items():
        old = prev.variants.get(name)
        if old is None or old.skipped or v.skipped:
            if old is not None and bool(old.skipped) != bool(v.skipped):
                rows.append(Row(scenario, case.name, name, "variant", None, None, verdict="incomparable",
                                detail=f"skipped: {old.skipped or 'no'} vs {v.skipped or 'no'}"))
            continue
        for key in sorted(set(old.counters) | set(v.counters)):
            m = metric(key, counter=True)
            if m.kind == "exact":
                row = _exact(scenario, case.name, name, m, old.counters.get(key, 0.0), v.counters.get(key, 0.0))
                if key == "queries" and row.verdict in {"worse", "better"}:
                    row = replace(row, detail=statement_changes(old.statements, v.statements) or row.detail)
                rows.append(row)
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


def statement_changes(before: dict[str, float], after: dict[str, float], limit: int = 3) -> str:
    """Which statements ran more (or less) often per unit: the query a regression added, named."""
    moved = sorted(((after.get(s, 0.0) - before.get(s, 0.0), s) for s in set(before) | set(after)),
                   key=lambda x: -abs(x[0]))
    moved = [(d, s) for d, s in moved if abs(d) > 1e-9][:limit]
    return "; ".join(f"{d:+g} × {s[:160]}" for d, s in moved)


def _num(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def confirm(first: Comparison, again: Comparison) -> Comparison:
    """Keep a time/ratio regression only if an independent re-run regressed the same way.

    Counters and checks are exact and need no confirmation; timings do. An unconfirmed
    regression stays visible with the verdict `unconfirmed`."""
    repeated = {(r.scenario, r.case, r.variant, r.metric) for r in again.regressions}
    rows = []
    for r in first.rows:
        if r.regressed and r.metric in TIMING and (r.scenario, r.case, r.variant, r.metric) not in repeated:
            r = replace(r, verdict="unconfirmed", detail="not reproduced by the confirmation run")
        rows.append(r)
    return replace(first, rows=tuple(rows), notes=first.notes + (
        f"time/ratio regressions re-measured in {again.new_label}",))


# Renderers live in harness.present.comparison; these names stay importable from here.
def __getattr__(name: str):
    if name in {"to_markdown", "to_json", "to_table", "summary_line", "interesting"}:
        from harness.present import comparison

        return getattr(comparison, name)
    raise AttributeError(name)
