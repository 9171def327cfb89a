"""From samples to the numbers a result reports — for one process, and merged over several.

One process: each variant's ratio to its case baseline is the statistic the case's timing mode
declares (median of per-round paired ratios, or ratio of totals for op streams); its interval is
exact order statistics for a median (any n, its real coverage stated) or a paired bootstrap for a
ratio of totals, labelled as covering one process's rounds only.

Several processes: every process contributes its own estimate; the reported ratio and time are
their geometric means, with a t interval over processes — the noise a fresh process adds is in
it. Counters, checks and metrics come from process 0, which alone runs the counters pass.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from harness.measure import stats
from harness.results.model import CaseResult


def ratio_interval(samples: Sequence[float], base: Sequence[float], statistic: str) -> stats.Interval:
    """One process's ratio of a variant to the baseline, with the interval its rounds support."""
    if statistic == "ratio_of_totals":
        point, (lo, hi) = stats.ratio_of_totals(samples, base)
        return stats.Interval(point, lo, hi, 0.95 if len(samples) >= 10 else 0.0,
                              f"paired bootstrap of {len(samples)} rounds")
    return stats.median_interval(stats.paired_ratios(samples, base))


def with_ratios(case: CaseResult) -> CaseResult:
    """The case with each variant's ratio, interval and per-process estimates (one process)."""
    base = case.variants[case.baseline].samples_s if case.baseline in case.variants else ()
    statistic = case.timing.get("statistic", "median_ratio")
    variants = {}
    for name, v in case.variants.items():
        if v.skipped or not v.samples_s:
            variants[name] = v
            continue
        ratio = interval = None
        if base:
            iv = ratio_interval(v.samples_s, base, statistic)
            ratio, interval = iv.estimate, iv
        variants[name] = replace(
            v, ratio=ratio, ratio_ci95=interval.bounds if interval else None,
            ratio_ci_level=interval.level if interval else None,
            ratio_ci_method=(interval.method + " (one process: within-run noise only)") if interval else "",
            groups=(len(v.samples_s),), process_ratios=(ratio,) if ratio is not None else (),
            process_medians_s=(v.median_s,) if v.median_s is not None else ())
    return replace(case, variants=variants, processes=1)


def merge_processes(runs: Sequence[CaseResult]) -> CaseResult:
    """One case measured in several processes, as one: pooled samples (grouped), each process's
    estimate kept, the between-process interval reported. Process 0 brings counters and checks."""
    first = runs[0]
    if len(runs) == 1:
        return first
    variants = {}
    for name, v0 in first.variants.items():
        parts = [r.variants[name] for r in runs if name in r.variants and not r.variants[name].skipped
                 and r.variants[name].samples_s]
        if v0.skipped or not parts:
            variants[name] = v0
            continue
        samples = tuple(s for p in parts for s in p.samples_s)
        medians = tuple(p.median_s for p in parts)
        ratios = tuple(p.ratio for p in parts if p.ratio is not None)
        ratio = ci = level = None
        method = ""
        if len(ratios) == len(parts) and len(ratios) >= 2:
            iv = stats.between_process_interval(ratios)
            ratio, ci, level, method = iv.estimate, iv.bounds, iv.level, iv.method
        elif ratios:
            ratio, ci, level, method = v0.ratio, v0.ratio_ci95, v0.ratio_ci_level, v0.ratio_ci_method
        metrics = dict(v0.metrics)
        variants[name] = replace(
            v0, samples_s=samples, median_s=_geomean(medians), iqr_s=stats.iqr(samples), ratio=ratio,
            ratio_ci95=ci, ratio_ci_level=level, ratio_ci_method=method, groups=tuple(len(p.samples_s) for p in parts),
            process_ratios=ratios, process_medians_s=medians, metrics=metrics)
    return replace(first, variants=variants, rounds=sum(r.rounds for r in runs),
                   duration_s=sum(r.duration_s for r in runs), processes=len(runs))


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))
