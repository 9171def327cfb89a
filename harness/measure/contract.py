"""The scenario contract: a scenario declares, the harness executes.

A `Scenario` names what it needs from the stack, its parameters per profile, a `setup` that seeds
data and builds what the whole run shares, the `Metric`s it reports, and builds `Case`s: a set of
`Variant`s compared against one baseline at one parameter point, with `Check`s that verify each
variant measured what it claims, and one declared `Timing` mode.

Lifecycle of one run of a scenario (in each measuring process):

    shared = setup(ctx)            # idempotent seeding + run-wide resources (servers, pools);
                                   # register their cleanup with ctx.on_close(fn)
    for each case:
        unit = variant.make(ctx)   # ctx.counting=True: instrumented, untimed counters pass
        unit = variant.make(ctx)   # ctx.counting=False: the raw unit the timed rounds call
                                   # (each ctx carries ctx.shared = what setup returned;
                                   #  ctx.on_close(fn) releases what the factory started)
    every on_close callback runs, in reverse order, however the run ends

A variant is a *factory* called twice so counting costs the measured path nothing.
"""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import LabsDeprecationWarning, UsageError
from harness.measure.metrics import BarsChart, Metric, SeriesChart, counter_metrics
from harness.results.model import CheckOutcome

__all__ = [
    "PROFILES", "Unit", "Context", "Variant", "VariantRun", "Check", "Case", "Scenario",
    "Timing", "Calibrated", "FixedLoops", "SelfTimed", "Metric", "SeriesChart", "BarsChart",
    "queries_exactly", "queries_at_most", "same_result_as", "metric_check", "counter_metrics",
    "fmt_time", "fmt_number",
]

PROFILES = ("quick", "nightly", "full")
"""quick: seconds, one process. nightly: the quick data measured for precision — several fresh
processes and more rounds, so verdicts hold between runs (a scenario may give it data of its own;
by default it uses the quick parameters). full: the big data sets."""
REQUIRED_PROFILES = ("quick", "full")

Unit = Callable[[], Any]


class Context:
    """What a variant factory and `setup` get.

    `shared` is what the scenario's `setup` returned (servers, pools, fixtures the whole run
    uses). `on_close(fn)` registers cleanup: everything registered is called in reverse order
    when this context closes (after its pass, or at the end of the run for setup's context),
    however it ends. `state` is free scratch space.
    """

    def __init__(self, params: Mapping[str, Any], seed: int, profile: str, components: frozenset[str],
                 counting: bool = False, artifacts: Path | None = None, shared: Any = None) -> None:
        self.params = params
        self.seed = seed
        self.profile = profile
        self.components = components
        self.counting = counting
        """True in the untimed, instrumented pass whose results the checks read."""
        self.counters: Counter = Counter()
        self.metrics: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.artifacts = artifacts
        """A directory for this run's files (server logs...): results/<run-id>/, created on demand."""
        self.shared = shared
        self.planned: frozenset[str] | None = None
        """In setup's context: the variants this run will run (after --variants), so a setup can
        start only what they need; None elsewhere."""
        self._closers: list[Callable[[], Any]] = []
        self._samples: list[tuple[Callable[[], Any], Callable[[], Any]]] = []

    def artifacts_dir(self) -> Path:
        if self.artifacts is None:
            raise RuntimeError("no artifacts directory for this run")
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self.artifacts

    def count(self, name: str, n: float = 1) -> None:
        """Add to a deterministic counter (only call it from instrumented code paths)."""
        self.counters[name] += n

    def on_close(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Call `fn` when this context closes (reverse order of registration); returns `fn`."""
        self._closers.append(fn)
        return fn

    def around_samples(self, before: Callable[[], Any], after: Callable[[], Any]) -> None:
        """Call `before()` just ahead of each of this variant's timed samples and `after()` just
        after it (both outside the timed region). For background work a variant owns (a flusher
        thread): resume it for its own samples and pause it before other variants are timed, so
        its cost is charged to itself."""
        self._samples.append((before, after))

    def before_sample(self) -> None:
        for before, _after in self._samples:
            before()

    def after_sample(self) -> None:
        for _before, after in reversed(self._samples):
            after()

    def close(self) -> None:
        """Run every registered cleanup, newest first; all of them run even if one raises (the
        first error is raised at the end)."""
        legacy = self.state.pop("close", None)
        if legacy is not None:
            warnings.warn("ctx.state['close'] = fn is deprecated: use ctx.on_close(fn) (every registered "
                          "function runs, not only the last one assigned)", LabsDeprecationWarning, stacklevel=2)
            self._closers.append(legacy)
        first: BaseException | None = None
        while self._closers:
            fn = self._closers.pop()
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - keep closing the others, report the first
                first = first or exc
        if first is not None:
            raise first


@dataclass(frozen=True)
class Variant:
    name: str
    make: Callable[[Context], Unit]
    description: str = ""
    requires: frozenset[str] = frozenset()
    """Stack components this variant needs beyond the scenario's (e.g. memcached)."""
    explain: bool = False
    """Capture EXPLAIN of the SQL this variant runs (counters pass)."""
    series: str = ""
    """For charts: the family this variant belongs to (e.g. 'threads') ..."""
    x: float | None = None
    """... and its position along the family's axis (e.g. 4 workers). See SeriesChart."""


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
    statements: Mapping[str, int] = field(default_factory=dict)
    """Normalized SQL -> times it ran over the pass."""

    def per_unit(self, counter: str) -> float:
        return self.counters.get(counter, 0) / self.units if self.units else 0.0


@dataclass(frozen=True)
class Check:
    """A named predicate over the counters passes of a case.

    `fn(runs) -> (ok, detail)` where runs maps variant name -> VariantRun. `variant` names
    the variant the check is about (shown beside it in the table); `needs` names other variants
    it reads: when one of them was not run, the check is skipped (never passed).
    """

    name: str
    variant: str
    fn: Callable[[Mapping[str, VariantRun]], tuple[bool, str]]
    needs: tuple[str, ...] = ()

    def evaluate(self, runs: Mapping[str, VariantRun]) -> CheckOutcome:
        if self.variant not in runs:
            return CheckOutcome(self.name, self.variant, ok=False, detail="variant skipped", skipped=True)
        missing = [n for n in self.needs if n not in runs]
        if missing:
            return CheckOutcome(self.name, self.variant, ok=False, skipped=True,
                                detail=f"not checked: {', '.join(missing)} did not run")
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
    """Every unit's result equals the reference's; on a difference, the first differing path and
    both values there (the whole outputs are kept with the run for a diff)."""
    from harness.measure.diff import first_difference

    def fn(runs):
        mine, theirs = list(runs[variant].results), list(runs[reference].results)
        if mine == theirs:
            return True, f"{len(mine)} results identical to {reference}"
        return False, f"differs from {reference}: " + first_difference(mine, theirs)
    return Check(f"same result as {reference}", variant, fn, needs=(reference,))


def metric_check(variant: str, name: str, predicate: Callable[[Any], bool], expectation: str) -> Check:
    """A check on a scenario metric, e.g. stale_reads == 0 (a missing metric fails it)."""
    def fn(runs):
        value = runs[variant].metrics.get(name)
        if value is None:
            return False, f"{name} was not measured (expected {expectation})"
        return predicate(value), f"{name} = {_short(value)} (expected {expectation})"
    return Check(f"{name} {expectation}", variant, fn)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- timing modes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibrated:
    """Each sample is a loop of units calibrated to last about the profile's sample time, after a
    warm-up; the case reports the median of per-round paired ratios to the baseline."""

    rounds: int | None = None
    """A fixed number of interleaved rounds (default: the profile's budget decides)."""
    mode = "calibrated"
    statistic = "median_ratio"


@dataclass(frozen=True)
class FixedLoops:
    """For units that walk a shared op stream: every sample of every variant runs exactly `loops`
    units and the runner adds no warm-up or calibration calls, so in round r all variants replay
    the *same* ops (the factory does its own warm lap); runs end on whole laps of the stream.
    The case reports the ratio of totals (chunks of ops differ in cost, so per-round ratios
    would weigh cheap and dear chunks alike)."""

    loops: int
    rounds: int | None = None
    mode = "fixed_loops"
    statistic = "ratio_of_totals"


@dataclass(frozen=True)
class SelfTimed:
    """The unit measures itself and returns its sample in seconds (a load burst's seconds per
    request, a boot-to-ready time): one call per sample, no calibration or warm-up. Metrics the
    timed factory puts in its ctx.metrics are kept (load percentiles, CPU...)."""

    rounds: int | None = None
    mode = "self_timed"
    statistic = "median_ratio"


Timing = Calibrated | FixedLoops | SelfTimed


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
    """Metrics (counters, scenario metrics) shown in the table, in order (empty: those declared
    shown)."""
    time_label: str = "time/unit"
    """Header of the time column in tables; empty hides it (when another column says it better)."""
    derive: Callable[[Any], Mapping[str, Mapping[str, Any]]] | None = None
    """After timing: CaseResult -> {variant: {metric: value}} computed from the measured ratios
    (e.g. speedup and efficiency), merged into each variant's metrics."""
    timing: Timing = field(default_factory=Calibrated)
    charts: tuple[SeriesChart | BarsChart, ...] = ()
    """Pictures of this case beyond the speed bars every case gets."""
    # -- the fields below are the contract before timing modes; they still work (with a warning)
    self_timed: bool = False
    rounds: int | None = None
    fixed_loops: int | None = None

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"case {self.name}: duplicate variant names {names}")
        if self.baseline not in names:
            raise ValueError(f"case {self.name}: baseline {self.baseline!r} is not a variant")
        if self.self_timed or self.rounds is not None or self.fixed_loops is not None:
            warnings.warn(f"case {self.name}: self_timed / fixed_loops / rounds are deprecated: declare "
                          "timing=SelfTimed(rounds=...), FixedLoops(n) or Calibrated(rounds=...)",
                          LabsDeprecationWarning, stacklevel=3)
            timing = (SelfTimed(self.rounds) if self.self_timed else
                      FixedLoops(self.fixed_loops, self.rounds) if self.fixed_loops else Calibrated(self.rounds))
            object.__setattr__(self, "timing", timing)
            for name in ("self_timed", "rounds", "fixed_loops"):
                object.__setattr__(self, name, Case.__dataclass_fields__[name].default)

    def without(self, keep: set[str]) -> Case:
        """This case with only the variants in `keep` (and its baseline), and their checks."""
        variants = tuple(v for v in self.variants if v.name in keep or v.name == self.baseline)
        names = {v.name for v in variants}
        return replace(self, variants=variants, checks=tuple(c for c in self.checks if c.variant in names))


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    requires: frozenset[str]
    profiles: Mapping[str, Mapping[str, Any]]
    """profile name -> parameter values."""
    cases: Callable[[Mapping[str, Any]], Sequence[Case]]
    setup: Callable[[Context], Any] | None = None
    """Idempotent, deterministic seeding (skips work when the data already matches); may return
    a value every variant factory receives as `ctx.shared`, and register cleanup with
    `ctx.on_close`."""
    lesson_file: Path | None = None
    summarize: Callable[[Any], list[str]] | None = None
    """Result -> sentences written from the run's numbers."""
    optional: frozenset[str] = frozenset()
    """Components used when present (variants needing them are skipped with a reason otherwise)."""
    metrics: tuple[Metric, ...] = ()
    """What this scenario's metrics and counters mean: label, unit, which way is better, whether
    they compare exactly. The engine's own counters (queries, rows, cache ops) are declared
    already."""
    processes: Mapping[str, int] | None = None
    """Worker processes per profile, overriding the profile's default (e.g. 1 for load
    scenarios whose samples are long bursts)."""
    teardown: Callable[[], None] | None = None
    """Deprecated: register cleanup with ctx.on_close in setup."""

    def __post_init__(self) -> None:
        missing = [p for p in REQUIRED_PROFILES if p not in self.profiles]
        if missing:
            raise ValueError(f"scenario {self.name}: no parameters for profile(s) {missing}")
        if self.teardown is not None:
            warnings.warn(f"scenario {self.name}: teardown= is deprecated: register cleanup with "
                          "ctx.on_close(fn) in setup", LabsDeprecationWarning, stacklevel=3)
        seen: set[str] = set()
        for m in self.metrics:
            if not isinstance(m, Metric):
                raise ValueError(f"scenario {self.name}: metrics must be Metric(...), got {m!r}")
            if m.name in seen:
                raise ValueError(f"scenario {self.name}: metric {m.name!r} declared twice")
            seen.add(m.name)

    def profile_params(self, profile: str) -> Mapping[str, Any]:
        """The parameters of a profile as declared ('nightly' falls back to 'quick')."""
        if profile in self.profiles:
            return self.profiles[profile]
        if profile == "nightly":
            return self.profiles["quick"]
        raise UsageError(f"unknown profile {profile!r} (choose from: {', '.join(PROFILES)})")

    def variant_names(self, profile: str = "quick") -> list[str]:
        seen: dict[str, None] = {}
        for case in self.cases(self.profile_params(profile)):
            for v in case.variants:
                seen.setdefault(v.name, None)
        return list(seen)

    def declared_metrics(self) -> dict[str, Metric]:
        """Every metric this scenario's results may carry: the engine's counters, then its own."""
        return {**counter_metrics(), **{m.name: m for m in self.metrics}}

    def params_for(self, profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = dict(self.profile_params(profile))
        for key, value in (overrides or {}).items():
            if key not in params:
                raise UsageError(f"scenario {self.name} has no parameter {key!r} "
                                 f"(parameters: {', '.join(sorted(params)) or 'none'})")
            params[key] = _coerce(key, value, params[key])
            _check_ceiling(key, params[key], self._ceiling(key))
        return params

    def _ceiling(self, key: str) -> float:
        """The largest value a parameter may be given: 100× the largest any profile uses (at
        least 10,000) — enough to explore, not enough to exhaust the machine by a typo."""
        values: list[float] = []
        for profile in self.profiles:
            v = self.profile_params(profile).get(key)
            for item in (v if isinstance(v, (list, tuple)) else [v]):
                if isinstance(item, (int, float)) and not isinstance(item, bool):
                    values.append(float(item))
        return max(10_000.0, 100 * max(values, default=0.0))

    def lesson_text(self) -> str:
        if self.lesson_file and self.lesson_file.exists():
            return self.lesson_file.read_text()
        return ""


def _check_ceiling(key: str, value: Any, ceiling: float) -> None:
    for item in (value if isinstance(value, (list, tuple)) else [value]):
        if isinstance(item, (int, float)) and not isinstance(item, bool) and item > ceiling:
            raise UsageError(f"parameter {key}={item:g} is above the lab's limit for it ({ceiling:,.0f}: 100× the "
                             "largest profile's value); data that big would exhaust the machine",
                             hint=f"use a value up to {ceiling:,.0f}")


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


def fmt_time(seconds: float | None) -> str:
    """Seconds as the largest fitting unit: 1.23 ms, 45.6 µs."""
    from harness.present.fmt import fmt_time as _fmt

    return _fmt(seconds)


def fmt_number(value: float) -> str:
    from harness.present.fmt import fmt_number as _fmt

    return _fmt(value)
