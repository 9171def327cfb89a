"""One self-contained HTML page of a project's history: every row's series with its change points,
the latest verdicts on top, each step linked to the commits between the runs around it (their
`git log`, embedded: readable offline, in a CI artifact). Inline SVG from matplotlib, no scripts."""
from __future__ import annotations

import html
import subprocess
from collections.abc import Sequence
from pathlib import Path

from harness.present import charts
from harness.results.model import Result
from harness.results.trends import Finding, Point, rows

CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.85rem}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top} th{background:#f4f4f4}
.bad{color:#cf222e;font-weight:bold} .ok{color:#1a7f37} .meta{color:#666;font-size:.9rem}
details pre{background:#f6f8fa;padding:.4rem;max-height:18rem;overflow:auto;font-size:.8rem}
figure{margin:0} svg{max-width:100%;height:auto} section{margin:2rem 0}
"""


def git_log(a: str | None, b: str | None, root: Path | None = None) -> str:
    """The commits between two runs (one line each), or why there are none to show."""
    if not a or not b:
        return "(a run without a commit recorded)"
    try:
        done = subprocess.run(["git", "log", "--oneline", "--no-decorate", f"{a}..{b}"], cwd=root,
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "(git is not available here)"
    if done.returncode != 0:
        return f"(not in this repository's history: {a[:8]}..{b[:8]})"
    return done.stdout.strip() or "(the same commit: the change came from elsewhere — the machine, the "\
                                  "dependencies, or the data)"


def _pct(x: float) -> str:
    return f"{(x - 1) * 100:+.1f}%"


def findings_table(items: Sequence[Finding], root: Path | None = None) -> str:
    if not items:
        return "<p class='ok'>no change point and no drift in this history</p>"
    head = "".join(f"<th>{h}</th>" for h in ("row", "", "commits", "change [95% CI]", "p", "runs", "dependencies"))
    body = []
    for f in items:
        change = _pct(f.change) + (f" [{_pct(f.ci95[0])}, {_pct(f.ci95[1])}]" if f.ci95 else "")
        runs = f"{f.support[0]} + {f.support[1]}" if f.kind == "step" else f"{f.support[0]} (window)"
        log = git_log(f.before.sha if f.before else None, f.after.sha, root)
        commits = (f"<details><summary>{html.escape(f.commits)}</summary><pre>{html.escape(log)}</pre></details>")
        body.append(f"<tr><td>{html.escape(f.scenario)} · {html.escape(f.row)}</td>"
                    f"<td class='{'bad' if f.worse else 'ok'}'>{f.kind}{' (worse)' if f.worse else ''}</td>"
                    f"<td>{commits}</td><td>{change}</td><td>{f.p:.2g}</td><td>{runs}</td>"
                    f"<td>{html.escape('; '.join(f.dependencies)) or '—'}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def row_figure(title: str, series: dict[str, list[Point]], steps: dict[str, list[Finding]]):
    """Each series over its runs; every step a dashed vertical line where the new level begins."""
    plt = charts._pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for name, points in series.items():
        xs = list(range(len(points)))
        ax.plot(xs, [p.value for p in points], marker="o", ms=2.5, lw=1, label=name, gid=f"row-{name}")
        ids = [p.run_id for p in points]
        for f in steps.get(name, ()):
            if f.after.run_id in ids:
                x = ids.index(f.after.run_id)
                ax.axvline(x - 0.5, color="#d62728" if f.worse else "#2ca02c", ls="--", lw=1.2,
                           gid=f"step-{name}-{x}")
                ax.annotate(_pct(f.change), (x - 0.5, points[x].value), xytext=(3, 6), textcoords="offset points",
                            fontsize=7, color="#d62728" if f.worse else "#2ca02c")
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xlabel("runs in commit order")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def page(runs_by_scenario: dict[str, list[Result]], items: Sequence[Finding], root: Path | None = None) -> str:
    """The dashboard: latest verdicts, every finding, then each scenario's ratio rows charted."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Perf Lab history</title>"
             f"<style>{CSS}</style></head><body><h1>Perf Lab history</h1>"]
    latest = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(runs[-1].run_id)}</td>"
        f"<td>{html.escape((runs[-1].env.get('git_sha') or '?')[:8])}</td><td>{len(runs)}</td>"
        f"<td class='{'ok' if runs[-1].ok else 'bad'}'>{'ok' if runs[-1].ok else 'FAILING'}</td>"
        f"<td>{sum(1 for f in items if f.scenario == name and f.after.run_id == runs[-1].run_id)}</td></tr>"
        for name, runs in sorted(runs_by_scenario.items()))
    parts.append("<section id='latest'><h2>Latest</h2><table><thead><tr><th>scenario</th><th>newest run</th>"
                 "<th>commit</th><th>runs</th><th>checks</th><th>findings at it</th></tr></thead>"
                 f"<tbody>{latest}</tbody></table></section>")
    worse = [f for f in items if f.worse]
    parts.append(f"<section id='findings'><h2>Change points and drifts ({len(items)}, {len(worse)} the worse way)"
                 f"</h2>{findings_table(sorted(items, key=lambda f: (not f.worse, f.scenario, f.row)), root)}"
                 "</section>")
    for name, runs in sorted(runs_by_scenario.items()):
        parts.append(f"<section class='scenario' id='s-{html.escape(name)}'><h2>{html.escape(name)}</h2>"
                     f"<p class='meta'>{len(runs)} runs · machine class {html.escape(_class(runs[-1]))}</p>")
        series = rows(runs)
        for metric in ("ratio", "time"):
            chosen = {f"{case} · {variant}": pts for (sc, case, variant, m), pts in series.items()
                      if sc == name and m == metric and len(pts) > 1}
            if not chosen:
                continue
            steps: dict[str, list[Finding]] = {}
            for f in items:
                if f.scenario == name and f.metric == metric and f.kind == "step":
                    steps.setdefault(f"{f.case} · {f.variant}", []).append(f)
            fig = row_figure(f"{name} · {metric}", chosen, steps)
            parts.append(f"<figure class='trend'>{charts.svg(fig)}</figure>")
        mine = [f for f in items if f.scenario == name]
        parts.append(findings_table(mine, root) + "</section>")
    parts.append("<p class='meta'>Steps: PELT segmentation (ruptures) confirmed by a Welch t test (p &lt; 0.001, "
                 "at least 3 runs each side); drifts: a least-squares trend over the last 28 runs, significant two "
                 "nights in a row. Counters change exactly.</p></body></html>")
    return "\n".join(parts)


def _class(r: Result) -> str:
    from harness.results.trends import machine_class

    return machine_class(r)
