"""The result model: plain frozen values that renderers, the store and compare share.

Results are immutable so they can be passed around and rendered many ways; the runner builds
them, `store` turns them into versioned JSON and back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    variant: str
    ok: bool
    detail: str = ""
    skipped: bool = False


@dataclass(frozen=True)
class VariantResult:
    name: str
    samples_s: tuple[float, ...] = ()
    """Time per unit of work, one sample per round (each sample a calibrated loop)."""
    loops: int = 0
    """Units of work timed per sample."""
    median_s: float | None = None
    iqr_s: float | None = None
    ratio: float | None = None
    """Median over rounds of (this variant's sample / the baseline's sample in the same round)."""
    ratio_ci95: tuple[float, float] | None = None
    counters: dict[str, float] = field(default_factory=dict)
    """Deterministic counters per unit of work (queries, rows, cache hits...), from an untimed pass."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Scenario-specific measured facts (stale reads, hit ratio, backlog...)."""
    explain: tuple[dict, ...] = ()
    skipped: str | None = None
    """Why this variant was not measured (missing component), or None."""
    description: str = ""
    series: str = ""
    """For charts: the family of this variant and its position in it (see SeriesChart)."""
    x: float | None = None
    ratio_ci_level: float | None = None
    """The coverage `ratio_ci95` really has (0.95, or less when the sample is too small: 0.75 for
    3 rounds); the field keeps its name for readers of older files."""
    ratio_ci_method: str = ""
    """How the interval was made: 't over 5 processes', 'order statistics of 15 rounds (one
    process: within-run noise only)'..."""
    groups: tuple[int, ...] = ()
    """Samples per worker process, in order: samples_s[:groups[0]] came from process 0..."""
    process_ratios: tuple[float, ...] = ()
    """Each process's own estimate of `ratio` (its case statistic over its rounds)."""
    process_medians_s: tuple[float, ...] = ()
    """Each process's median time per unit."""
    statements: dict[str, float] = field(default_factory=dict)
    """The SQL the variant ran (normalized: literals folded) -> times per unit, most frequent first:
    when `queries` grows, which statement is new."""

    def by_process(self) -> list[tuple[float, ...]]:
        """samples_s split back into the processes that measured them."""
        out, start = [], 0
        for n in self.groups or (len(self.samples_s),):
            out.append(self.samples_s[start:start + n])
            start += n
        return out


@dataclass(frozen=True)
class CaseResult:
    """One comparison: a set of variants against one baseline, at one parameter point."""

    name: str
    params: dict[str, Any]
    baseline: str
    variants: dict[str, VariantResult]
    checks: tuple[CheckOutcome, ...] = ()
    rounds: int = 0
    duration_s: float = 0.0
    title: str = ""
    columns: tuple[str, ...] = ()
    """Counters/metrics the table shows for this case (empty: the usual counters)."""
    time_label: str = "time/unit"
    """Header of the time column; empty hides it (load cases show rps instead)."""
    timing: dict[str, Any] = field(default_factory=lambda: {"mode": "calibrated", "statistic": "median_ratio"})
    """How samples were taken and which statistic the ratio is: {"mode": calibrated | fixed_loops |
    self_timed, "statistic": median_ratio | ratio_of_totals}. `compare` tests that statistic."""
    charts: tuple[dict[str, Any], ...] = ()
    """Declared pictures of this case (SeriesChart / BarsChart as dicts)."""
    processes: int = 1
    """Worker processes whose rounds were merged into this case."""
    order: dict[str, Any] = field(default_factory=dict)
    """How variants were ordered within rounds: {"design": "williams", "seed": N}."""

    def passed(self, *variants: str) -> bool:
        """Every check of these variants held (a skipped one does not count against them): what a
        lesson may claim of them ("the same bytes") only then."""
        return all(c.ok or c.skipped for c in self.checks if c.variant in variants)


@dataclass(frozen=True)
class Result:
    scenario: str
    run_id: str
    profile: str
    complete: bool
    started_at: str
    finished_at: str | None = None
    title: str = ""
    reason: str | None = None
    """Why the run is incomplete (interrupted, a service died...)."""
    env: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    cases: tuple[CaseResult, ...] = ()
    lesson: tuple[str, ...] = ()
    """Sentences written from this run's numbers."""
    timings: dict[str, float] = field(default_factory=dict)
    """Wall time of the run's phases in seconds (stack, migrate, seed, measure)."""
    processes: int = 1
    """Fresh worker processes the rounds were spread over (0 or 1: one process)."""
    gc: bool = True
    """Whether the garbage collector ran during timed samples (--no-gc turns it off)."""
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What each counter and metric of this result means (harness.measure.metrics.Metric as a
    dict, by name): label, unit, which way is better, exact or statistical."""

    def metric(self, name: str, counter: bool = False):
        """The declaration of `name` (an undeclared counter is exact, lower is better)."""
        from harness.measure.metrics import Metric, undeclared

        data = self.metrics.get(name)
        return Metric.from_dict(name, data) if data is not None else undeclared(name, counter)

    @property
    def checks(self) -> list[CheckOutcome]:
        return [c for case in self.cases for c in case.checks]

    @property
    def ok(self) -> bool:
        return self.complete and all(c.ok or c.skipped for c in self.checks)
