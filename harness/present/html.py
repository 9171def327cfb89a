"""Self-contained reports of one result: HTML (inline SVG charts, no scripts, no CDN — it opens
offline, in a mail attachment, in a CI artifact) and Markdown (for READMEs and CI summaries).

Why matplotlib SVG rather than plotly or Vega-Lite: the same figures as the PNGs, no JavaScript
runtime to vendor (plotly.js alone is ~3.5 MB per file), deterministic output, and every bar is
a DOM element a test can find. Interactive zoom is what we give up.
"""
from __future__ import annotations

import html
import re

from harness.present import charts
from harness.present.fmt import fmt_speed, fmt_time, rel_spread
from harness.present.terminal import cell_text, default_columns, header
from harness.results.model import CaseResult, Result

CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.85rem}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right} td:first-child,th:first-child{text-align:left}
th{background:#f4f4f4} .ok{color:#1a7f37} .bad{color:#cf222e;font-weight:bold} .skip{color:#9a6700}
.lesson{background:#eef6ff;border-left:4px solid #0969da;padding:.5rem 1rem;margin:1rem 0}
.incomplete{background:#ffebe9;border:1px solid #cf222e;padding:.6rem;font-weight:bold}
figure{margin:0} svg{max-width:100%;height:auto} section.case{margin:2rem 0}
"""


def _md_to_html(text: str) -> str:
    """The lessons' small Markdown subset: headings, paragraphs, bullets, **bold**, `code`."""
    out, in_list = [], False

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("- "):
            flush()
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{inline(stripped[2:])}</li>")
        elif line.startswith("  ") and in_list and out:
            out[-1] = out[-1][:-5] + " " + inline(stripped) + "</li>"
        else:
            if in_list:
                out.append("</ul>")
                in_list = False
            if stripped.startswith("#"):
                flush()
                level = min(len(stripped) - len(stripped.lstrip("#")) + 1, 4)
                out.append(f"<h{level}>{inline(stripped.lstrip('#').strip())}</h{level}>")
            elif not stripped:
                flush()
            else:
                para.append(stripped)
    flush()
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def _case_table(result: Result, case: CaseResult) -> str:
    cols = list(case.columns) or default_columns(result, case)
    head = ["variant", *([case.time_label, "±IQR"] if case.time_label else []), f"vs {case.baseline}", "95% CI",
            *[header(result, case, c) for c in cols], "checks"]
    rows = []
    for v in case.variants.values():
        if v.skipped:
            rows.append(f"<tr><td>{html.escape(v.name)}</td><td class='skip' colspan='{len(head) - 1}'>skipped: "
                        f"{html.escape(v.skipped)}</td></tr>")
            continue
        checks = [c for c in case.checks if c.variant == v.name and not c.skipped]
        mark = "—" if not checks else ("<span class='ok'>✓</span>" if all(c.ok for c in checks)
                                       else "<span class='bad'>✗</span>")
        speed, interval = ("baseline", "") if v.name == case.baseline else fmt_speed(v.ratio, v.ratio_ci95)
        cells = [html.escape(v.name)]
        if case.time_label:
            cells += [fmt_time(v.median_s), rel_spread(v.iqr_s, v.median_s)]
        cells += [speed, interval, *[html.escape(cell_text(result, case, v, c)) for c in cols], mark]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def to_html(result: Result, lesson_text: str = "") -> str:
    env = result.env
    stack = env.get("stack", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(stack.get("versions", {}).items()))
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(result.scenario)} — "
        f"{html.escape(result.run_id)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(result.scenario)}: {html.escape(result.title)}</h1>",
        f"<p class='meta'>run {html.escape(result.run_id)} · profile {html.escape(result.profile)} · started "
        f"{html.escape(result.started_at)} · {html.escape(stack.get('kind', '?'))} stack ({html.escape(versions)}) · "
        f"Python {html.escape(str(env.get('python')))} · Django {html.escape(str(env.get('django')))} · "
        f"{env.get('cpus')} CPUs ({html.escape(str(env.get('cpu_model', '')))}) · git "
        f"{html.escape(str(env.get('git_sha') or '?'))[:10]}{' (dirty)' if env.get('git_dirty') else ''}</p>",
    ]
    if not result.complete:
        parts.append(f"<div class='incomplete'>INCOMPLETE RUN: {html.escape(result.reason or '')}</div>")
    if result.lesson:
        parts.append("<div class='lesson'><strong>What this run shows</strong><ul>"
                     + "".join(f"<li>{html.escape(line)}</li>" for line in result.lesson) + "</ul></div>")
    scaling = charts.scaling_figure(result)
    if scaling is not None:
        parts.append(f"<section id='scaling'><h2>Scaling</h2><figure class='chart'>{charts.svg(scaling)}</figure>"
                     "</section>")
    for i, case in enumerate(result.cases):
        parts.append(f"<section class='case' id='case-{i}'><h2>{html.escape(case.title or case.name)}</h2>"
                     f"<p class='meta'>{case.rounds} interleaved rounds · baseline {html.escape(case.baseline)}</p>")
        parts.append(_case_table(result, case))
        if any(v.ratio for v in case.variants.values()):
            parts.append(f"<figure class='chart'>{charts.svg(charts.case_figure(case))}</figure>")
        for spec in case.charts:
            fig = charts.declared_figure(result, case, spec)
            if fig is not None:
                parts.append(f"<figure class='chart {html.escape(spec['kind'])}'>{charts.svg(fig)}</figure>")
        failed = [c for c in case.checks if not c.ok and not c.skipped]
        if failed:
            parts.append("<ul>" + "".join(f"<li class='bad'>✗ {html.escape(c.variant)}: {html.escape(c.name)} — "
                                          f"{html.escape(c.detail)}</li>" for c in failed) + "</ul>")
        parts.append("</section>")
    if lesson_text:
        parts.append(f"<section id='lesson'>{_md_to_html(lesson_text)}</section>")
    parts.append("<p class='meta'>Variants were measured in the same run, interleaved; compare them as ratios, "
                 "not as absolute numbers across machines.</p></body></html>")
    return "\n".join(parts)


def to_markdown(result: Result) -> str:
    lines = [f"## {result.scenario}: {result.title}", "",
             f"run `{result.run_id}` · profile {result.profile} · {result.env.get('stack', {}).get('kind', '?')} stack · "
             f"{result.env.get('cpus', '?')} CPUs" + ("" if result.complete else f" · **INCOMPLETE: {result.reason}**"),
             ""]
    for case in result.cases:
        cols = list(case.columns) or default_columns(result, case)
        lines += [f"### {case.title or case.name}", ""]
        head = ["variant", *([case.time_label] if case.time_label else []), f"vs {case.baseline}", "95% CI",
                *[header(result, case, c) for c in cols], "checks"]
        lines += ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
        for v in case.variants.values():
            if v.skipped:
                lines.append(f"| {v.name} | skipped: {v.skipped} |" + " |" * (len(head) - 2))
                continue
            checks = [c for c in case.checks if c.variant == v.name and not c.skipped]
            mark = "—" if not checks else ("✓" if all(c.ok for c in checks) else "✗")
            speed, interval = ("baseline", "") if v.name == case.baseline else fmt_speed(v.ratio, v.ratio_ci95)
            cells = [v.name, *([fmt_time(v.median_s)] if case.time_label else []), speed, interval,
                     *[cell_text(result, case, v, c) for c in cols], mark]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if result.lesson:
        lines += ["**What this run shows**", "", *[f"- {line}" for line in result.lesson], ""]
    return "\n".join(lines)
