"""Renderers of a Comparison (harness.results.compare): markdown, JSON and a rich table."""
from __future__ import annotations

import json
from dataclasses import asdict

from harness.results.compare import RELATIVE, Comparison, Row

DETAILED = {"incomparable", "failing", "unconfirmed", "vanished", "missing", "incomplete", "changed", "slower",
            "faster", "worse", "better"}
"""Verdicts whose detail (why, and on what noise) is printed beside them."""


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    if metric == "time":
        from harness.present.fmt import fmt_time

        return fmt_time(value)
    if metric == "ratio":
        return f"{value:.4g}"
    if metric.endswith("_ms"):
        return f"{value:.4g} ms"
    return f"{value:.4g}"


def _change(row: Row) -> str:
    if row.change is None:
        return ""
    if row.metric in RELATIVE:
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
             f"**{summary_line(comparison)}** (timings: " + (comparison.method or
                 f"p < {comparison.alpha:g} after Holm over all timing rows") +
             f" and past a minimum effect — {th}; counters exact)", ""]
    rows = interesting(comparison, everything)
    if rows:
        lines += ["| scenario | case | variant | metric | base | new | change [95% CI] | verdict |",
                  "| --- | --- | --- | --- | ---: | ---: | --- | --- |"]
        for r in rows:
            verdict = f"**{r.verdict}**" if r.regressed else r.verdict
            detail = f" ({r.detail})" if r.detail and r.verdict in DETAILED else ""
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
                      _change(r), Text(r.verdict + (f" ({r.detail})" if r.verdict in DETAILED and r.detail else ""),
                                       style=style))
    return table
