"""Metrics that declare themselves, and the charts a case asks for.

A `Metric` says what a number means — its label and unit, which way is better, and how two runs
of it compare: `exact` (deterministic counters and facts: any change is a verdict, or one beyond
a stated relative `tolerance`), `statistical` (a number with noise, compared with its samples)
or `info` (shown, never a verdict). Scenarios declare theirs; the engine declares its own
counters here. The declarations travel inside each result, so report, compare, charts, history
and the exports read them from the result — no metric name of a scenario lives in the engine.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("exact", "statistical", "info")
BETTER = ("lower", "higher", None)


@dataclass(frozen=True)
class Metric:
    name: str
    label: str = ""
    """Column header (default: the name with spaces)."""
    unit: str = ""
    """What one of it is: 'ms', 'rps', 'MiB', 'queries'... ('' when it is a count or a fraction)."""
    better: str | None = "lower"
    """'lower' or 'higher' is better, or None (neither: a verdict never says worse or better)."""
    kind: str = "info"
    """'exact' (compared exactly, or within `tolerance`), 'statistical' or 'info' (never a verdict)."""
    tolerance: float = 0.0
    """For exact metrics: a relative change up to this is 'unchanged' (e.g. 0.1 for buffer counts
    that move with autovacuum); 0 means exactly."""
    percent: bool = False
    """The value is a fraction shown as a percentage (hit ratio 0.93 -> 93.0%)."""
    show: bool = False
    """Shown as a column when a case names no columns of its own."""
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.better not in BETTER:
            raise ValueError(f"metric {self.name}: better must be 'lower', 'higher' or None, not {self.better!r}")
        if self.tolerance < 0:
            raise ValueError(f"metric {self.name}: tolerance must be >= 0")

    @property
    def header(self) -> str:
        return self.label or self.name.replace("_", " ")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "name"}

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> Metric:
        return cls(name=name, **{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def undeclared(name: str, counter: bool) -> Metric:
    """What an undeclared number is taken to mean: a counter (ctx.count) is deterministic and
    lower is better, as a counter of work; any other metric is information only."""
    return Metric(name, kind="exact" if counter else "info", better="lower" if counter else None)


GC_TOLERANCE = 0.5
BUFFER_TOLERANCE = 0.2
WAL_TOLERANCE = 0.1
"""Relative changes of these counters that are not verdicts, from A/A runs on unchanged code
(benchmarks/calibrate.py measures them): a collection's timing, autovacuum, HOT pruning and hint
bits move them a little between runs; a real change of work (one more query, a seq scan
instead of an index) moves them far more."""


def counter_metrics() -> dict[str, Metric]:
    """The engine's own counters (harness.measure.counters) and what they mean."""
    ms = (
        Metric("queries", "queries", "queries", kind="exact", show=True, description="SQL statements per unit"),
        Metric("rows", "rows", "rows", kind="exact", show=True, description="rows returned per unit"),
        Metric("rows_written", "rows written", "rows", kind="exact"),
        Metric("cache_hits", "hits", kind="exact", better="higher", show=True),
        Metric("cache_misses", "misses", kind="exact", show=True),
        Metric("cache_sets", "sets", kind="exact", show=True),
        Metric("cache_deletes", "dels", kind="exact", show=True),
        Metric("cache_adds", "adds", kind="exact"),
        Metric("cache_add_conflicts", "add conflicts", kind="exact"),
        Metric("gc_collections", "GC", kind="exact", tolerance=GC_TOLERANCE,
               description="garbage collections (any generation) per unit, counted from a full collection"),
        Metric("pg_buffers", "buffers", kind="exact", tolerance=BUFFER_TOLERANCE,
               description="PostgreSQL buffers touched per unit (hit or read, pg_stat_statements)"),
        Metric("pg_wal_records", "WAL records", kind="exact", tolerance=WAL_TOLERANCE,
               description="WAL records written per unit (pg_stat_statements)"),
        Metric("pg_wal_bytes", "WAL bytes", "B", description="WAL bytes per unit: full-page images after a "
                                                            "checkpoint make it vary, so it is information only"),
    )
    return {m.name: m for m in ms}


@dataclass(frozen=True)
class SeriesChart:
    """`metric` of the variants that declare a `series` and an `x`, drawn against x — one line per
    series (e.g. speedup against workers for threads and processes). `ideal='cores'` adds the
    line min(x, cores) a perfectly parallel family would follow; `ideal='x'` the line y = x (what
    a server keeping up with its offered load serves)."""

    metric: str
    x_label: str
    y_label: str = ""
    ideal: str | None = None
    log_x: bool = True
    x_metric: str = ""
    """Take each point's x from this metric of the variant (e.g. the offered rate it measured)
    rather than the variant's declared `x`."""
    kind = "series"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class BarsChart:
    """Grouped bars: each of `metrics` side by side per variant (e.g. p50/p95/p99 latency)."""

    metrics: tuple[str, ...]
    y_label: str = ""
    title: str = ""
    kind = "bars"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self), "metrics": list(self.metrics)}
