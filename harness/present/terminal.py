"""The terminal renderer: a Result in, rich tables and the lesson out. Labels, units and
formats come from the metric declarations the result carries."""
from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, Group
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.present.fmt import fmt_metric, fmt_number, fmt_speed, fmt_time, rel_spread
from harness.results.model import CaseResult, Result, VariantResult


def measured_how(case: CaseResult) -> str:
    """'3 processes × 10 rounds' or '15 interleaved rounds' (what the interval covers)."""
    if case.processes > 1:
        return f"{case.processes} processes, {case.rounds} interleaved rounds"
    return f"{case.rounds} interleaved rounds"


def interval_text(v: VariantResult, interval: str) -> str:
    """The interval, with its real coverage when that is not 95 % (3 rounds: their range, 75 %)."""
    level = v.ratio_ci_level
    if interval and level is not None and abs(level - 0.95) > 0.005 and level < 0.95:
        return f"{interval} ({level:.0%})"
    return interval


def within_run_only(case: CaseResult) -> bool:
    return case.processes <= 1 and any("within-run" in v.ratio_ci_method for v in case.variants.values())


def case_table(case: CaseResult, columns: Iterable[str], result: Result) -> Table:
    table = Table(title=f"{case.title or case.name}  [dim]({measured_how(case)}, "
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
        table.add_column(header(result, case, col), justify="right", no_wrap=True)
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
        table.add_row(v.name, *timing, Text(speed, style=style), interval_text(v, interval),
                      *[cell_text(result, case, v, col) for col in columns], mark)
    if skipped:
        table.caption = "\n".join(f"{v.name} skipped: {v.skipped}" for v in skipped)
        table.caption_justify = "left"
        table.caption_style = "yellow"
    return table


def interval_note(result: Result) -> str:
    """What the intervals of this run account for, in one line."""
    if any(c.processes > 1 for c in result.cases):
        n = max(c.processes for c in result.cases)
        return (f"intervals: t over {n} fresh processes — they include the noise a new process brings, "
                "so they hold between runs better than any one process's rounds")
    if any(within_run_only(c) for c in result.cases):
        return ("intervals: one process's rounds only — between runs a row moves more; "
                "--processes N (the full profile uses 5) gives intervals that hold between runs")
    return ""


def _is_counter(case: CaseResult, col: str) -> bool:
    return any(col in v.counters for v in case.variants.values())


def header(result: Result, case: CaseResult, col: str) -> str:
    m = result.metric(col, counter=_is_counter(case, col))
    return m.header + (f" {m.unit}" if m.unit and m.unit not in m.header else "")


def cell_text(result: Result, case: CaseResult, v: VariantResult, col: str) -> str:
    if col in v.metrics:
        return fmt_metric(result.metric(col), v.metrics[col])
    if col in v.counters or _is_counter(case, col):
        return fmt_number(round(v.counters.get(col, 0.0), 3))  # a counter never bumped is a real 0
    return "—"


def default_columns(result: Result, case: CaseResult) -> list[str]:
    """The counters and metrics declared `show` that this case carries, in declaration order."""
    present = {k for v in case.variants.values() for k in (*v.counters, *v.metrics)}
    return [name for name, m in result.metrics.items() if m.get("show") and name in present]


def terminal(result: Result, console: Console | None = None, lesson_text: str = "") -> None:
    console = console or Console()
    head = f"[bold]{result.scenario}[/bold] — {result.title}  [dim]profile {result.profile} · run {result.run_id}"
    stack = result.env.get("stack", {})
    head += f" · {stack.get('kind', '?')} stack · {result.env.get('cpus', '?')} CPUs[/dim]"
    console.print(head)
    if not result.complete:
        console.print(Panel(f"INCOMPLETE RUN: {result.reason}", style="bold red"))
    for case in result.cases:
        cols = list(case.columns) or default_columns(result, case)
        console.print(case_table(case, cols, result))
    failed = [c for c in result.checks if not c.ok and not c.skipped]
    for c in failed:
        console.print(f"[bold red]✗ {c.variant}: {c.name}[/bold red] — {c.detail}")
    if result.lesson:
        console.print(Panel(Group(*[Text("• " + line) for line in result.lesson]), title="what this run shows",
                            title_align="left", border_style="cyan"))
    if lesson_text:
        console.print(Markdown(lesson_text))
    note = interval_note(result)
    if note:
        console.print(f"[dim]{note}[/dim]")
    verdict = "[green]all checks passed[/green]" if result.ok else (
        f"[red]incomplete[/red] ({escape(result.reason or 'no reason recorded')})" if not result.complete
        else f"[red]{len(failed)} check(s) failed[/red]")
    console.print(f"{verdict} · timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
