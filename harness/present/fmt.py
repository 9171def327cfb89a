"""Formatting helpers shared by every renderer and by scenarios' lesson sentences (pure)."""
from __future__ import annotations

import math
from typing import Any

from harness.measure.metrics import Metric


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


def speed_words(ratio: float) -> str:
    """A ratio as '3.2× faster' or '1.4× slower' (for lesson sentences)."""
    return f"{1 / ratio:.1f}× faster" if ratio < 1 else f"{ratio:.1f}× slower"


def fmt_number(value: float) -> str:
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def fmt_metric(metric: Metric | None, value: Any) -> str:
    """A metric value as its declaration says (percentages, rounding); text as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if metric is not None and metric.percent:
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else fmt_number(round(value, 3))
    return str(value)


def rel_spread(spread: float | None, center: float | None) -> str:
    """Spread relative to the median: unit-free and narrow."""
    if spread is None or not center:
        return "—"
    return f"{spread / center:.0%}"
