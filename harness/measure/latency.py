"""Exact latency histograms (HDR, microsecond resolution) and the open-loop request schedule.

Latencies are recorded in an HdrHistogram (1 µs .. 60 s, 3 significant digits) per burst and per
generator process; histograms merge exactly (counts add), so percentiles are taken once, over
everything — never a median of per-burst percentiles. Encoded histograms (base64, compressed) are
small enough to keep in a result and be merged again by `labs compare`.

Open loop (wrk2, Gil Tene): requests are sent on a fixed schedule t_i = t0 + i / rate, whatever the
server does; each one's latency is measured from its *intended* send time, so when the server
stalls, the requests that should have gone out meanwhile count their wait — the tail a user sees.
A closed loop (each user waits for its answer before sending again) slows down with the server
and under-reports that tail: coordinated omission.
"""
from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence

LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3
PERCENTILES = (50, 95, 99, 99.9)


def histogram():
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def encode(h) -> str:
    return h.encode().decode("ascii") if isinstance(h.encode(), bytes) else h.encode()


def decode(text: str):
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(text.encode("ascii") if isinstance(text, str) else text)


def merge(encoded: Iterable[str]):
    """One histogram of several (bursts, generator processes): counts add, exactly."""
    total = histogram()
    for text in encoded:
        if text:
            total.add(decode(text))
    return total


def percentiles_ms(h, qs: Sequence[float] = PERCENTILES) -> dict[str, float | None]:
    """{'p50_ms': …, 'p95_ms': …} from a histogram (None when it is empty)."""
    out = {}
    for q in qs:
        key = f"p{q:g}_ms".replace(".", "_")
        out[key] = round(h.get_value_at_percentile(q) / 1000, 3) if h.get_total_count() else None
    return out


def bootstrap_percentile(encoded: Sequence[str], q: float, n_resamples: int = 400,
                         seed: int = 0) -> tuple[float, float] | None:
    """95 % interval of a percentile over bursts: resample whole bursts, merge, take the percentile."""
    import random

    hists = [decode(e) for e in encoded if e]
    if len(hists) < 2:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(n_resamples):
        total = histogram()
        for _ in hists:
            total.add(rng.choice(hists))
        values.append(total.get_value_at_percentile(q) / 1000)
    values.sort()
    return values[int(0.025 * len(values))], values[int(math.ceil(0.975 * len(values))) - 1]


def bootstrap_ratio(base: Sequence[str], new: Sequence[str], q: float, n_resamples: int = 400,
                    seed: int = 0) -> tuple[float, float] | None:
    """95 % interval of percentile(new) / percentile(base): whole bursts resampled on each side."""
    import random

    sides = [[decode(e) for e in side if e] for side in (base, new)]
    if any(len(side) < 2 for side in sides):
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(n_resamples):
        values = []
        for side in sides:
            total = histogram()
            for _ in side:
                total.add(rng.choice(side))
            values.append(total.get_value_at_percentile(q))
        if values[0] > 0:
            ratios.append(values[1] / values[0])
    if not ratios:
        return None
    ratios.sort()
    return ratios[int(0.025 * len(ratios))], ratios[int(math.ceil(0.975 * len(ratios))) - 1]


def schedule(rate: float, duration_s: float, start: float, share: int = 0, shares: int = 1,
             cap: int | None = None) -> list[float]:
    """Intended send times of one generator's share (every `shares`-th slot, from `share`) of an
    open-loop schedule at `rate` requests per second over `duration_s`, at most `cap` of them
    (the list is never longer than the run may send: a huge rate costs no memory)."""
    n = int(rate * duration_s)
    slots = range(share, n, shares)
    if cap is not None:
        slots = slots[:max(0, cap)]
    return [start + i / rate for i in slots]


def encode_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
