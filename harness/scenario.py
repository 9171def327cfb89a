"""The scenario contract: a scenario declares, the harness executes.

A `Scenario` names what it needs from the stack, its parameters per profile, a seed function,
and builds `Case`s: a set of `Variant`s compared against one baseline at one parameter point,
with `Check`s that verify each variant measured what it claims.

A variant is a *factory*: `make(ctx)` returns the unit of work (a no-argument callable). The
harness calls the factory twice — once with `ctx.counting` True for the untimed counters pass
(instrumented objects, results kept for checks), once with it False for the timed rounds (raw
objects, nothing extra on the measured path).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.model import CheckOutcome

PROFILES = ("quick", "full")

Unit = Callable[[], Any]


@dataclass
class Context:
    """What a variant factory and a seed function get. Mutable scratch space lives in `state`."""

    params: Mapping[str, Any]
    seed: int
    profile: str
    components: frozenset[str]
    counting: bool = False
    counters: Counter = field(default_factory=Counter)
    metrics: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    artifacts: Path | None = None
    """A directory for this run's files (server logs...): results/<run-id>/, created on demand."""

    def artifacts_dir(self) -> Path:
        if self.artifacts is None:
            raise RuntimeError("no artifacts directory for this run")
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self.artifacts

    def count(self, name: str, n: float = 1) -> None:
        """Add to a deterministic counter (only call it from instrumented code paths)."""
        self.counters[name] += n


@dataclass(frozen=True)
class Variant:
    name: str
    make: Callable[[Context], Unit]
    description: str = ""
    requires: frozenset[str] = frozenset()
    """Stack components this variant needs beyond the scenario's (e.g. memcached)."""
    explain: bool = False
    """Capture EXPLAIN of the SQL this variant runs (counters pass)."""


@dataclass(frozen=True)
class VariantRun:
    """What the counters pass saw of one variant: the input to checks."""

    name: str
    units: int
    counters: Mapping[str, float]
    """Totals over the pass (not per unit)."""
    results: Sequence[Any]
    metrics: Mapping[str, Any]
    sql: Sequence[str] = ()

    def per_unit(self, counter: str) -> float:
        return self.counters.get(counter, 0) / self.units if self.units else 0.0


@dataclass(frozen=True)
class Check:
    """A named predicate over the counters passes of a case.

    `fn(runs) -> (ok, detail)` where runs maps variant name -> VariantRun. `variant` names
    the variant the check is about (shown beside it in the table).
    """

    name: str
    variant: str
    fn: Callable[[Mapping[str, VariantRun]], tuple[bool, str]]

    def evaluate(self, runs: Mapping[str, VariantRun]) -> CheckOutcome:
        if self.variant not in runs:
            return CheckOutcome(self.name, self.variant, ok=True, detail="variant skipped", skipped=True)
        try:
            ok, detail = self.fn(runs)
        except Exception as exc:  # a check that crashes is a failed check, with the reason
            return CheckOutcome(self.name, self.variant, ok=False, detail=f"check raised {exc!r}")
        return CheckOutcome(self.name, self.variant, bool(ok), detail)


def queries_exactly(variant: str, expected: int) -> Check:
    def fn(runs):
        got = runs[variant].per_unit("queries")
        return got == expected, f"{got:g} queries per unit (expected {expected})"
    return Check(f"queries == {expected}", variant, fn)


def queries_at_most(variant: str, budget: float) -> Check:
    def fn(runs):
        got = runs[variant].per_unit("queries")
        return got <= budget, f"{got:g} queries per unit (budget {budget:g})"
    return Check(f"queries <= {budget:g}", variant, fn)


def same_result_as(variant: str, reference: str) -> Check:
    def fn(runs):
        if reference not in runs:
            return True, f"{reference} not run"
        mine, theirs = list(runs[variant].results), list(runs[reference].results)
        if mine == theirs:
            return True, f"{len(mine)} results identical to {reference}"
        for i, (a, b) in enumerate(zip(mine, theirs)):
            if a != b:
                return False, f"unit {i} differs from {reference}: {_short(a)} != {_short(b)}"
        return False, f"{len(mine)} results vs {len(theirs)} from {reference}"
    return Check(f"same result as {reference}", variant, fn)


def metric_check(variant: str, name: str, predicate: Callable[[Any], bool], expectation: str) -> Check:
    """A check on a scenario metric, e.g. stale_reads == 0."""
    def fn(runs):
        value = runs[variant].metrics.get(name)
        return predicate(value), f"{name} = {_short(value)} (expected {expectation})"
    return Check(f"{name} {expectation}", variant, fn)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Case:
    name: str
    params: Mapping[str, Any]
    baseline: str
    variants: tuple[Variant, ...]
    checks: tuple[Check, ...] = ()
    units: int = 1
    """Units of work in the counters pass (1 for a whole request; more for op streams)."""
    title: str = ""
    columns: tuple[str, ...] = ()
    """Counters/metrics to show in the table, in order (empty: the usual counters)."""
    time_label: str = "time/unit"
    """Header of the time column in tables; empty hides it (when another column says it better)."""
    derive: Callable[[Any], Mapping[str, Mapping[str, Any]]] | None = None
    """After timing: CaseResult -> {variant: {metric: value}} computed from the measured ratios
    (e.g. speedup and efficiency), merged into each variant's metrics."""
    self_timed: bool = False
    """The unit measures itself and returns its sample in seconds (e.g. seconds per request of a
    load burst, or boot-to-ready time): one call per sample, no calibration or runner warm-up.
    Metrics the timed factory puts in its ctx.metrics are kept (load percentiles, CPU...)."""
    rounds: int | None = None
    """A fixed number of interleaved rounds (self-timed cases are expensive per sample)."""
    fixed_loops: int | None = None
    """For units that walk a shared op stream: every sample of every variant runs this many units
    and the runner adds no warm-up/calibration calls, so in round r all variants replay the *same*
    ops (the factory does its own warm lap). Without it, positions drift apart and the op mix of
    a sample, not the strategy, decides its time."""

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"case {self.name}: duplicate variant names {names}")
        if self.baseline not in names:
            raise ValueError(f"case {self.name}: baseline {self.baseline!r} is not a variant")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    requires: frozenset[str]
    profiles: Mapping[str, Mapping[str, Any]]
    """profile name -> parameter values."""
    cases: Callable[[Mapping[str, Any]], Sequence[Case]]
    setup: Callable[[Context], None] | None = None
    """Idempotent, deterministic seeding (skips work when the data already matches)."""
    lesson_file: Path | None = None
    summarize: Callable[[Any], list[str]] | None = None
    """Result -> sentences written from the run's numbers."""
    optional: frozenset[str] = frozenset()
    """Components used when present (variants needing them are skipped with a reason otherwise)."""
    teardown: Callable[[], None] | None = None
    """Called once when the run ends, however it ends: stop what the variants shared (servers)."""

    def __post_init__(self) -> None:
        missing = [p for p in PROFILES if p not in self.profiles]
        if missing:
            raise ValueError(f"scenario {self.name}: no parameters for profile(s) {missing}")

    def variant_names(self, profile: str = "quick") -> list[str]:
        seen: dict[str, None] = {}
        for case in self.cases(self.profiles[profile]):
            for v in case.variants:
                seen.setdefault(v.name, None)
        return list(seen)

    def params_for(self, profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if profile not in self.profiles:
            raise UsageError(f"unknown profile {profile!r} (choose from: {', '.join(PROFILES)})")
        params = dict(self.profiles[profile])
        for key, value in (overrides or {}).items():
            if key not in params:
                raise UsageError(f"scenario {self.name} has no parameter {key!r} "
                                 f"(parameters: {', '.join(sorted(params)) or 'none'})")
            params[key] = _coerce(key, value, params[key])
        return params

    def lesson_text(self) -> str:
        if self.lesson_file and self.lesson_file.exists():
            return self.lesson_file.read_text()
        return ""


def _coerce(key: str, value: Any, like: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if isinstance(like, bool):
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if isinstance(like, int):
            out = int(value)
            if out <= 0:
                raise ValueError(value)
            return out
        if isinstance(like, float):
            return float(value)
        if isinstance(like, (list, tuple)):
            items = [_coerce(key, part, like[0] if like else "") for part in value.split(",") if part]
            if not items:
                raise ValueError(value)
            return type(like)(items)
    except ValueError:
        raise UsageError(f"bad value {value!r} for parameter {key!r} (expected something like {like!r})") from None
    return value
