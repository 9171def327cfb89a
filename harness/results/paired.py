"""Verdicts across commits from *paired* processes: the base and the candidate measured in the
same job, one process of each side after the other, in pairs.

Why: a comparison with stored runs carries the run-to-run variance of both sides (a cloud VM's
mood changes between runs), so +10 % on a 3.5 % run-to-run CV was caught 2 times in 10. Measured
close together in time, a pair's two processes share most of that mood; the change is estimated
from the *differences within pairs* (randomized multiple interleaved trials, Abedi & Brecht,
ICPE 2017; duet benchmarking, Bulej et al., ICPE 2020):

- per pair j and row (a variant's time per unit, or its ratio to the case's baseline variant):
  d_j = log(candidate / base) of that pair's two process medians;
- across the n pairs, which side goes first alternating (AB, BA, …): the AB/BA crossover
  estimate — the mean of the two groups' means, so whichever process of a pair runs first being
  slower cancels out — its t interval (n - 2 degrees of freedom) and a *one-sided* p-value for
  "slower" (the gate asks one question: did it get worse?);
- Holm over the rows that gate (time and ratio of each variant), nothing else;
- a verdict needs the corrected p below the stage's alpha and a change past the minimum effect.

The design is sequential in two stages with a Bonferroni split of the error budget: stage 1's
pairs are tested at alpha/2; when a row is suspect there but not conclusive, stage 2 *adds*
pairs and all of them are tested at alpha/2 again. A false alarm needs one of two tests at
alpha/2 to fire: at most alpha over the job (tests/test_paired.py checks it on synthetic pairs).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.measure import stats
from harness.results.compare import Comparison, Row
from harness.results.model import Result

ALPHA = 0.05
"""Family-wise false-alarm budget of one paired job (split over its two stages)."""
MIN_EFFECT = {"time": 0.03, "ratio": 0.03}
"""Default minimum effects: what paired processes on a 2-core VM resolve (see the calibration)."""
SUSPECT_P = 0.25
"""Stage 1 rows with a one-sided p below this (uncorrected) and a change past half the minimum
effect earn stage 2."""
GATED = ("time", "ratio")


@dataclass(frozen=True)
class PairedTest:
    """One row's paired estimate: change = exp(mean log difference)."""

    n: int
    change: float
    ci95: tuple[float, float]
    p_slower: float
    """One-sided p-value of H0 "not slower" (uncorrected)."""
    p_faster: float
    sd: float
    """Standard deviation of the per-pair log differences (how much pairs disagree)."""


def paired_test(log_diffs: Sequence[float], orders: Sequence[str] | None = None) -> PairedTest | None:
    """The t test of the mean of per-pair log differences (None with fewer than 2 pairs).

    With `orders` ("AB": base ran first, "BA": the candidate did) and at least two pairs of each,
    it is the AB/BA crossover analysis: the effect is the average of the two groups' means, so a
    *position* effect (whichever process of a pair runs first is slower) cancels out of the
    estimate and out of its variance, which comes from the spread within each group (n - 2
    degrees of freedom)."""
    pairs = [(x, o) for x, o in zip(log_diffs, orders or [""] * len(log_diffs)) if math.isfinite(x)]
    d = [x for x, _o in pairs]
    n = len(d)
    if n < 2:
        return None
    ab, ba = [x for x, o in pairs if o == "AB"], [x for x, o in pairs if o == "BA"]
    if orders is not None and len(ab) >= 2 and len(ba) >= 2:
        m1, m2 = sum(ab) / len(ab), sum(ba) / len(ba)
        mean = (m1 + m2) / 2
        pooled = (sum((x - m1) ** 2 for x in ab) + sum((x - m2) ** 2 for x in ba)) / (n - 2)
        sd = math.sqrt(pooled)
        se = math.sqrt(pooled / 4 * (1 / len(ab) + 1 / len(ba)))
        df = n - 2
    else:
        mean = sum(d) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
        se = sd / math.sqrt(n)
        df = n - 1
    if se == 0:
        p_slow = 0.0 if mean > 0 else 1.0
        p_fast = 0.0 if mean < 0 else 1.0
        return PairedTest(n, math.exp(mean), (math.exp(mean), math.exp(mean)), p_slow, p_fast, 0.0)
    t = mean / se
    half = stats.t_quantile(df) * se
    p_two = stats.t_sf(abs(t), df)
    p_slow = p_two / 2 if t > 0 else 1 - p_two / 2
    p_fast = p_two / 2 if t < 0 else 1 - p_two / 2
    return PairedTest(n, math.exp(mean), (math.exp(mean - half), math.exp(mean + half)), p_slow, p_fast, sd)


@dataclass(frozen=True)
class Judged:
    key: tuple[str, str, str]
    """(case, variant, metric)"""
    test: PairedTest
    p_holm: float
    verdict: str
    minimum: float


def judge(tests: Mapping[tuple[str, str, str], PairedTest], alpha: float,
          minimum: Mapping[str, float] | None = None) -> list[Judged]:
    """Holm over the gated rows at `alpha` (one stage's share), then each row's verdict."""
    limits = {**MIN_EFFECT, **(minimum or {})}
    keys = [k for k in tests if k[2] in GATED]
    adjusted = stats.holm([tests[k].p_slower for k in keys]) if keys else []
    adjusted_fast = stats.holm([tests[k].p_faster for k in keys]) if keys else []
    out = []
    for k, p, pf in zip(keys, adjusted, adjusted_fast):
        t, m = tests[k], limits[k[2]]
        verdict = "unchanged"
        if p < alpha and t.change > 1 + m:
            verdict = "slower"
        elif pf < alpha and t.change < 1 / (1 + m):
            verdict = "faster"
        out.append(Judged(k, t, p, verdict, m))
    return out


def suspects(tests: Mapping[tuple[str, str, str], PairedTest], judged: Sequence[Judged],
             minimum: Mapping[str, float] | None = None) -> list[tuple[str, str, str]]:
    """Rows that stage 2 should settle: not judged slower yet, but leaning that way."""
    limits = {**MIN_EFFECT, **(minimum or {})}
    slower = {j.key for j in judged if j.verdict == "slower"}
    return [k for k, t in tests.items() if k[2] in GATED and k not in slower
            and t.p_slower < SUSPECT_P and t.change > 1 + limits[k[2]] / 2]


def binomial_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (exact) interval of a rate k/n: what the calibration reports."""
    from scipy.stats import beta

    a = 1 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def compare_paired(base_label: str, base: Result, new_label: str, new: Result,
                   stages: Sequence[Mapping[tuple[str, str, str], PairedTest]],
                   minimum: Mapping[str, float] | None = None, alpha: float = ALPHA, looks: int = 2) -> Comparison:
    """A Comparison (rendered like any other) from the paired tests of each stage: a timing row is
    slower when any stage's test says so at alpha / len(stages); counters, exact metrics, checks
    and vanished rows compare exactly between the two sides' counting passes (compare's rules)."""
    from harness.results import compare as cmp

    # every *planned* look spends its share, whether or not stage 2 was needed
    share = alpha / max(1, looks, len(stages))
    final: dict[tuple[str, str, str], tuple[Judged, int]] = {}
    for s, tests in enumerate(stages, start=1):
        for j in judge(tests, share, minimum):
            # a verdict stands from the stage that reached it; otherwise the latest stage (most pairs) speaks
            if j.key not in final or final[j.key][0].verdict == "unchanged":
                final[j.key] = (j, s)
    rows: list[Row] = []
    if not new.complete:
        rows.append(Row(new.scenario, "*", "*", "run", None, None, verdict="incomplete",
                        detail=f"the candidate's run is incomplete: {new.reason or 'unknown reason'}"))
    if not base.complete:
        rows.append(Row(new.scenario, "*", "*", "run", None, None, verdict="incomparable",
                        detail=f"the base commit's run is incomplete: {base.reason or 'unknown reason'}"))
    rows += cmp._vanished(new.scenario, base, new)
    base_cases = {c.name: c for c in base.cases}
    for case in new.cases:
        prev = base_cases.get(case.name)
        if prev is None:
            rows.append(Row(new.scenario, case.name, "*", "case", None, None, verdict="new"))
            continue
        for variant, v in case.variants.items():
            for metric in GATED:
                got = final.get((case.name, variant, metric))
                if got is None:
                    continue
                j, stage = got
                t = j.test
                b = prev.variants[variant].median_s if metric == "time" else prev.variants[variant].ratio
                c = v.median_s if metric == "time" else v.ratio
                rows.append(Row(new.scenario, case.name, variant, metric, b, c, t.change, t.ci95, j.verdict,
                                f"{t.n} pairs · ±{t.sd:.1%}/pair · p={j.p_holm:.2g} (1-sided, Holm, α={share:g})",
                                p=j.p_holm, noise=t.sd))
        rows += cmp._exact_rows(new.scenario, prev, case, (base, new))
    limits = {**MIN_EFFECT, **(minimum or {})}
    pairs = max((t.n for tests in stages for t in tests.values()), default=0)
    order = new.env.get("paired", {}).get("order", "?")
    notes = (f"{new.scenario}: base {str(base.env.get('git_sha', '?'))[:10]} and candidate "
             f"{str(new.env.get('git_sha', '?'))[:10]} measured in one job, {pairs} pairs of processes (order "
             f"{order}); timing verdicts from the per-pair differences, one-sided for slower",)
    method = (f"paired processes, one-sided for slower, Holm over the time and ratio rows at α = {alpha:g}"
              + (f" split over {max(looks, len(stages))} stages" if max(looks, len(stages)) > 1 else ""))
    return Comparison(base_label, new_label, tuple(rows), dict(limits), notes, alpha, method)


def tests_from(diffs: Mapping[tuple[str, str, str], tuple[Sequence[float], Sequence[str]]]
               ) -> dict[tuple[str, str, str], PairedTest]:
    """Each row's paired test from its per-pair log differences and each pair's design ("AB"/"BA":
    the crossover analysis; lockstep pairs, already balanced within, "")."""
    out = {}
    for key, (d, orders) in diffs.items():
        t = paired_test(list(d), list(orders) if any(orders) else None)
        if t is not None:
            out[key] = t
    return out
