"""How well change-point detection finds steps and drifts in nightly histories (a simulation).

    python benchmarks/changepoint_sim.py                      # noise of this repo's calibration runs
    python benchmarks/changepoint_sim.py --noise 0.037        # a run-to-run CV of your own
    python benchmarks/changepoint_sim.py --from calib-out/aa  # measure the noise from stored runs

Each history is 60 nights of one row's estimate with log-normal noise of the given CV:
  - a step: +7 % from night 30 on — found at the right run (±1) in how many of 10 seeds?
  - a drift: +2 % a week (7 nights) from night 30 on — how many nights until it is named?
  - pure noise: how many false steps per 60 nights (and false drifts)?
harness.results.changepoints does the detecting, with the defaults `labs history` and `labs ci` use.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
from pathlib import Path


def noise_of(folder: Path) -> float:
    """Median run-to-run CV (of log estimates) of the ratio rows in stored runs."""
    from harness.results import store

    rows: dict[tuple, list[float]] = {}
    for path in store.list_runs(folder):
        r = store.load(path)
        for case in r.cases:
            for v in case.variants.values():
                if v.name != case.baseline and v.ratio:
                    rows.setdefault((case.name, v.name), []).append(math.log(v.ratio))
    return statistics.median(statistics.stdev(v) for v in rows.values() if len(v) > 2)


def history(seed: int, cv: float, nights: int = 60, step_at: int | None = None, step: float = 0.0,
            drift_from: int | None = None, per_week: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    out = []
    for night in range(nights):
        level = 1.0
        if step_at is not None and night >= step_at:
            level *= 1 + step
        if drift_from is not None and night >= drift_from:
            level *= (1 + per_week) ** ((night - drift_from + 1) / 7)
        out.append(level * math.exp(rng.gauss(0, cv)))
    return out


def main() -> None:
    from harness.results import changepoints as cp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise", type=float, help="run-to-run CV of the row (default: measured)")
    parser.add_argument("--from", dest="source", type=Path, help="stored runs to measure the noise from")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    cv = args.noise if args.noise is not None else noise_of(args.source) if args.source else 0.037
    print(f"run-to-run noise: {cv:.1%} (CV of one run's estimate)")

    found = 0
    for seed in range(args.seeds):
        steps = cp.steps(history(seed, cv, step_at=30, step=0.07))
        hit = any(abs(s.index - 30) <= 1 and s.change > 1 for s in steps)
        found += hit
        print(f"  step +7% at night 30, seed {seed}: " + (", ".join(f"night {s.index} {s.change - 1:+.1%} "
              f"[{s.ci95[0] - 1:+.1%}, {s.ci95[1] - 1:+.1%}] (p={s.p:.1g}, {s.support[0]}+{s.support[1]} runs)"
              for s in steps) or "nothing"))
    print(f"step found at the right night (±1): {found} of {args.seeds} seeds")

    delays = []
    for seed in range(args.seeds):
        series = history(seed, cv, drift_from=30, per_week=0.02)
        named = next((night for night in range(31, 61) if cp.drift_named(series[:night])), None)
        delays.append(None if named is None else named - 30)
    named = [d for d in delays if d is not None]
    print(f"drift of +2%/week from night 30: named in {len(named)} of {args.seeds} seeds, after "
          + (f"{statistics.median(named)} nights (median; max {max(named)})" if named else "—")
          + f"; within 21 nights in {sum(1 for d in named if d <= 21)} of {args.seeds}")

    false_steps = false_drifts = 0
    for seed in range(args.seeds):
        series = history(1000 + seed, cv)
        false_steps += len(cp.steps(series))
        false_drifts += sum(1 for night in range(21, 61) if cp.drift_named(series[:night])) > 0
    print(f"pure noise: {false_steps / args.seeds:.2f} false steps per 60 nights; "
          f"a false drift named in {false_drifts} of {args.seeds} histories")


if __name__ == "__main__":
    main()
