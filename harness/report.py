"""Renderers: a Result in, output out. Nothing here measures or touches the stack."""
from __future__ import annotations

import math
from collections.abc import Iterable

from rich.console import Console, Group
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.model import CaseResult, Result, VariantResult

COUNTER_LABELS = {
    "queries": "queries",
    "rows": "rows",
    "cache_hits": "hits",
    "cache_misses": "misses",
    "cache_sets": "sets",
    "cache_deletes": "dels",
}
"""Counters shown by default, with their column labels."""

LABELS = {**COUNTER_LABELS, "hit_ratio": "hit %", "stale_reads": "stale", "max_unflushed": "unflushed",
          "lost_keys_at_crash": "lost@crash", "queries_per_repeat": "q/repeat", "recomputes": "recomputes",
          "speedup": "speedup", "efficiency": "efficiency", "cpu_s_per_unit": "CPU s/unit", "start_s": "start s",
          "p50_ms": "p50 ms", "p95_ms": "p95 ms", "p99_ms": "p99 ms", "failures": "fail", "server_cpu": "srv CPU",
          "generator_cpu": "gen CPU", "worker_restarts": "restarts", "uss_mib": "USS MiB", "pss_mib": "PSS MiB",
          "top_node": "plan", "index_kib": "index KiB", "build_s": "build s", "insert_ms_per_1k": "ins ms/1k",
          "shared_hit": "buf hit", "server_conns": "srv conns", "sessions_per_request": "sess/req",
          "error_rate": "err rate", "connect_ms": "connect ms"}


def fmt_time(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_speed(ratio: float | None, ci: tuple[float, float] | None) -> tuple[str, str]:
    """ratio = variant time / baseline time -> ('N× faster' | 'N× slower' | '≈ same', '[lo–hi]')."""
    if ratio is None or ratio <= 0:
        return "—", ""
    if ci is not None and ci[0] <= 1.0 <= ci[1]:
        core = "≈ same"
    elif ratio < 1:
        core = f"{1 / ratio:.3g}× faster"
    else:
        core = f"{ratio:.3g}× slower"
    if ci is None:
        return core, ""
    lo, hi = sorted((1 / ci[1], 1 / ci[0])) if ratio < 1 else ci
    return core, f"{lo:.3g}–{hi:.3g}"


def fmt_number(value: float) -> str:
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def fmt_metric(name: str, value) -> str:
    if isinstance(value, (int, float)) and (name.endswith("ratio") or name == "efficiency"):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else fmt_number(round(value, 3))
    return str(value)


def case_table(case: CaseResult, columns: Iterable[str]) -> Table:
    table = Table(title=f"{case.title or case.name}  [dim]({case.rounds} interleaved rounds, "
                        f"baseline {case.baseline})[/dim]", title_justify="left", expand=False)
    show_time = bool(case.time_label)
    table.add_column("variant", style="bold", no_wrap=True)
    if show_time:
        table.add_column(case.time_label, justify="right", no_wrap=True)
        table.add_column("±IQR", justify="right", style="dim", no_wrap=True)
    table.add_column(f"vs {case.baseline}", justify="right", no_wrap=True)
    table.add_column("95% CI", justify="right", style="dim", no_wrap=True)
    columns = list(columns)
    for col in columns:
        table.add_column(LABELS.get(col, col.replace("_", " ")), justify="right", no_wrap=True)
    table.add_column("ok", justify="center")
    skipped: list[VariantResult] = []
    for v in case.variants.values():
        if v.skipped:
            table.add_row(v.name, *([Text("skipped", style="yellow"), ""] if show_time else []),
                          Text("skipped", style="yellow") if not show_time else "", "", *[""] * len(columns), "–")
            skipped.append(v)
            continue
        checks = [c for c in case.checks if c.variant == v.name and not c.skipped]
        mark = Text("—", style="dim") if not checks else (
            Text("✓", style="green") if all(c.ok for c in checks) else Text("✗", style="bold red"))
        speed, interval = ("baseline", "") if v.name == case.baseline else fmt_speed(v.ratio, v.ratio_ci95)
        style = "green" if "faster" in speed else ("red" if "slower" in speed else "")
        timing = [fmt_time(v.median_s), rel_spread(v.iqr_s, v.median_s)] if show_time else []
        table.add_row(v.name, *timing, Text(speed, style=style), interval,
                      *[cell_text(case, v, col) for col in columns], mark)
    if skipped:
        table.caption = "\n".join(f"{v.name} skipped: {v.skipped}" for v in skipped)
        table.caption_justify = "left"
        table.caption_style = "yellow"
    return table


def rel_spread(spread: float | None, center: float | None) -> str:
    """Spread relative to the median: unit-free and narrow."""
    if spread is None or not center:
        return "—"
    return f"{spread / center:.0%}"


def cell_text(case: CaseResult, v: VariantResult, col: str) -> str:
    if col in v.metrics:
        return fmt_metric(col, v.metrics[col])
    if col in v.counters or any(col in other.counters for other in case.variants.values()):
        return fmt_number(round(v.counters.get(col, 0.0), 3))  # a counter never bumped is a real 0
    return "—"


def default_columns(case: CaseResult) -> list[str]:
    cols: list[str] = []
    for v in case.variants.values():
        for key in v.counters:
            if key in COUNTER_LABELS and key not in cols:
                cols.append(key)
    return cols


def terminal(result: Result, console: Console | None = None, lesson_text: str = "") -> None:
    console = console or Console()
    head = f"[bold]{result.scenario}[/bold] — {result.title}  [dim]profile {result.profile} · run {result.run_id}"
    stack = result.env.get("stack", {})
    head += f" · {stack.get('kind', '?')} stack · {result.env.get('cpus', '?')} CPUs[/dim]"
    console.print(head)
    if not result.complete:
        console.print(Panel(f"INCOMPLETE RUN: {result.reason}", style="bold red"))
    for case in result.cases:
        cols = list(case.columns) or default_columns(case)
        console.print(case_table(case, cols))
    failed = [c for c in result.checks if not c.ok and not c.skipped]
    for c in failed:
        console.print(f"[bold red]✗ {c.variant}: {c.name}[/bold red] — {c.detail}")
    if result.lesson:
        console.print(Panel(Group(*[Text("• " + line) for line in result.lesson]), title="what this run shows",
                            title_align="left", border_style="cyan"))
    if lesson_text:
        console.print(Markdown(lesson_text))
    verdict = "[green]all checks passed[/green]" if result.ok else (
        "[red]incomplete[/red]" if not result.complete else f"[red]{len(failed)} check(s) failed[/red]")
    console.print(f"{verdict} · timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
