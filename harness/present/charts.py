"""Charts (PNG with matplotlib, and self-contained HTML pages that embed them).

Renderers only: a Result (or a list of them) in, files out. Matplotlib runs headless (Agg).
"""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

from harness.results.model import Result


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def result_figure(result: Result):
    """One panel per case: each variant's speed relative to the baseline, with its 95 % interval."""
    plt = _pyplot()
    cases = [c for c in result.cases if any(v.ratio for v in c.variants.values())]
    n = max(1, len(cases))
    height = sum(0.45 * len(c.variants) + 0.9 for c in cases) or 2
    fig, axes = plt.subplots(n, 1, figsize=(9, max(2.5, height)), squeeze=False,
                             gridspec_kw={"height_ratios": [len(c.variants) + 1 for c in cases] or [1]})
    for ax, case in zip(axes[:, 0], cases):
        _draw_speed(ax, case)
        ax.set_title(f"{case.title or case.name}", loc="left", fontsize=10)
    fig.suptitle(f"{result.scenario} — {result.title}\n{result.run_id} · {result.profile} · "
                 f"{result.env.get('cpus', '?')} CPUs" + ("" if result.complete else " · INCOMPLETE"),
                 fontsize=10)
    fig.tight_layout()
    return fig


def save_png(fig, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def result_png(result: Result, path: Path) -> Path:
    return save_png(result_figure(result), path)


def history_figure(title: str, labels: Sequence[str], series: dict[str, list[float | None]],
                   marks: dict[str, list[bool]] | None = None, ylabel: str = ""):
    """Lines over runs (in commit/time order); `marks` flags regressions with red rings."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = list(range(len(labels)))
    for name, values in series.items():
        pts = [(i, v) for i, v in zip(x, values) if v is not None and not math.isnan(v)]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=name)
        for i, flagged in enumerate((marks or {}).get(name, [])):
            if flagged and values[i] is not None:
                ax.plot([i], [values[i]], "o", ms=11, mfc="none", mec="#d62728", mew=2)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def html_page(title: str, png: Path, body_html: str = "") -> str:
    """A self-contained page (the chart inlined as data: URI; works offline, no scripts)."""
    data = base64.b64encode(png.read_bytes()).decode()
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}"
            "th{background:#f3f3f3}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
            f"{body_html}</body></html>")


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- per-case figures for reports -----------------------------------------------------------------
def _draw_speed(ax, case) -> None:
    """Bars of each variant's speed relative to the case baseline, with 95 % intervals."""
    names, speed, lo_err, hi_err, colors = [], [], [], [], []
    for v in case.variants.values():
        if not v.ratio:
            continue
        s = 1.0 / v.ratio
        lo, hi = (1.0 / v.ratio_ci95[1], 1.0 / v.ratio_ci95[0]) if v.ratio_ci95 else (s, s)
        failed = any(not c.ok and not c.skipped for c in case.checks if c.variant == v.name)
        names.append(v.name + ("  ✗" if failed else ""))
        speed.append(s)
        lo_err.append(max(0.0, s - lo))
        hi_err.append(max(0.0, hi - s))
        colors.append("#9e9e9e" if v.name == case.baseline else ("#d62728" if failed else
                                                                  ("#2ca02c" if s >= 1 else "#ff7f0e")))
    y = list(range(len(names)))[::-1]
    ax.barh(y, speed, xerr=[lo_err, hi_err], color=colors, capsize=3, height=0.6, gid="speed-bars")
    ax.set_yticks(y, names)
    ax.axvline(1.0, color="#555", lw=0.8, ls="--")
    if speed and max(speed) / max(min(speed), 1e-9) > 30:
        ax.set_xscale("log")
    for yi, s, hi in zip(y, speed, hi_err):  # the label sits past the interval, never on it
        ax.annotate(f"{s:.3g}×", (s + hi, yi), xytext=(5, 0), textcoords="offset points", va="center", fontsize=8)
    ax.margins(x=0.12)
    ax.set_xlabel(f"speed vs {case.baseline} (× faster, 95 % CI)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def case_figure(case):
    plt = _pyplot()
    n = sum(1 for v in case.variants.values() if v.ratio)
    fig, ax = plt.subplots(figsize=(8, 0.45 * n + 1.2))
    _draw_speed(ax, case)
    fig.tight_layout()
    return fig


def scaling_figure(result):
    """Time per unit against a numeric parameter that varies across cases (e.g. books in n_plus_one)."""
    key = scaling_param(result)
    if key is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = [c.params[key] for c in result.cases]
    names = list(dict.fromkeys(n for c in result.cases for n in c.variants))
    for name in names:
        pts = [(c.params[key], c.variants[name].median_s) for c in result.cases
               if name in c.variants and c.variants[name].median_s]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] * 1000 for p in pts], marker="o", label=name, gid=f"series-{name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(key)
    ax.set_ylabel("ms per unit (median)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"scaling with {key}", loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def scaling_param(result) -> str | None:
    if len(result.cases) < 2:
        return None
    keys = set.intersection(*(set(c.params) for c in result.cases))
    for key in sorted(keys):
        values = [c.params[key] for c in result.cases]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(set(values)) == len(values):
            return key
    return None


def declared_figure(result, case, spec: dict):
    """The picture a case declared (see harness.measure.metrics: SeriesChart, BarsChart)."""
    if spec.get("kind") == "bars":
        return bars_figure(result, case, spec)
    if spec.get("kind") == "series":
        return series_figure(result, case, spec)
    return None


def bars_figure(result, case, spec: dict):
    """Grouped bars: each declared metric side by side per variant (None when none measured)."""
    metrics = list(spec["metrics"])
    rows = [v for v in case.variants.values() if any(v.metrics.get(m) is not None for m in metrics)]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(metrics)
    x = list(range(len(rows)))
    palette = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd")
    for i, key in enumerate(metrics):
        ax.bar([xi + (i - (len(metrics) - 1) / 2) * width for xi in x], [v.metrics.get(key) or 0 for v in rows], width,
               label=result.metric(key).header, color=palette[i % len(palette)], gid=f"bars-{key}")
    ax.set_xticks(x, [v.name for v in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(spec.get("y_label") or "")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{case.name}: {spec.get('title') or ', '.join(metrics)}", loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def svg(fig) -> str:
    """Inline SVG of a figure (for self-contained HTML: no files, no scripts, no CDN)."""
    import io

    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # reproducible: no timestamp inside
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def series_figure(result, case, spec: dict):
    """A declared metric against each variant's `x`, one line per `series`; with ideal='cores' the
    line min(x, cores) (e.g. gil's speedup against workers), with ideal='x' the line y = x (served
    against offered load)."""
    metric, x_metric = spec["metric"], spec.get("x_metric")
    points: dict[str, list[tuple[float, float]]] = {}
    for v in case.variants.values():
        x = v.metrics.get(x_metric) if x_metric else v.x
        if v.series and isinstance(x, (int, float)) and v.metrics.get(metric) is not None:
            points.setdefault(v.series, []).append((float(x), v.metrics[metric]))
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    xs = sorted({x for pts in points.values() for x, _ in pts} | ({1.0} if spec.get("ideal") == "cores" else set()))
    if spec.get("ideal") == "x":  # e.g. served against offered load: the line a server keeping up follows
        ax.plot(xs, xs, ls="--", color="#555", label="ideal: y = x", gid="ideal")
    if spec.get("ideal") == "cores":
        cores = result.env.get("cpus") or 1
        ax.plot(xs, [min(x, cores) for x in xs], ls="--", color="#555", label=f"ideal: min(n, {cores} cores)",
                gid="ideal")
        ax.axhline(1.0, color="#999", lw=0.8)
    for family, pts in sorted(points.items()):
        pts.sort()
        ax.plot([x for x, _ in pts], [s for _, s in pts], marker="o", label=family, gid=f"series-{family}")
    if spec.get("log_x", True):
        ax.set_xscale("log", base=2)
    if len(xs) <= 12:
        ax.set_xticks(xs, [f"{x:.4g}" for x in xs])
    ax.set_xlabel(spec.get("x_label") or "")
    ax.set_ylabel(spec.get("y_label") or result.metric(metric).header)
    ax.set_title(f"{case.name}: {result.metric(metric).header} vs {spec.get('x_label') or 'x'}", loc="left",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
