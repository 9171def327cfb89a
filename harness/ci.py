"""`labs ci` as a composition: run the suite (a session), compare with a baseline, confirm timing
regressions by measuring again, write the summary and charts — as asv's `continuous` composes
its `run` and `compare`. Pure of any CLI: `gate(...)` returns a `Gate` the CLI renders, so tests
call it in-process.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import LabsError
from harness.measure.contract import Scenario
from harness.measure.runner import RunOptions
from harness.results import compare as cmp
from harness.results import store
from harness.results.compare import Comparison, Threshold
from harness.session import LabSession, SavedRun

SUITES = {"quick": "quick", "nightly": "nightly", "full": "full"}
"""Suite name -> profile."""


@dataclass(frozen=True)
class Gate:
    runs: tuple[SavedRun, ...]
    comparison: Comparison | None
    """None when there is no baseline to compare with yet."""
    summary: str
    """Markdown for the job summary."""
    files: tuple[Path, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)
    """Why the gate failed beyond regressions (an incomplete or failing run, a new regression step)."""
    drifts: tuple = ()
    """Slow drifts the history shows (reported, not failing)."""

    @property
    def regressions(self) -> int:
        return len(self.comparison.regressions) if self.comparison else 0

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.problems)


def gate(session: LabSession, scenarios: Sequence[Scenario], opts: RunOptions, baseline: str,
         thresholds: Sequence[Threshold] = (), confirm: int = 1, out_dir: Path = Path("ci-out"),
         suite: str = "quick", on_confirm=None) -> Gate:
    """Run, compare with `baseline` (results_dir/baselines/NAME), re-run scenarios whose timings
    regressed `confirm` times (only regressions seen every time count), then write
    out_dir/summary.md (and $GITHUB_STEP_SUMMARY), one chart per run and history charts."""
    from harness.present import charts

    results_dir = session.results_dir
    runs = session.run(scenarios, opts)
    new = [r.result for r in runs]
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    lines = [f"## Perf Lab · suite {suite} · {len(new)} scenario(s)", ""]
    for run in runs:
        r = run.result
        png = charts.result_png(r, out_dir / f"{r.run_id}.png")
        files.append(png)
        status = "ok" if r.ok else ("incomplete" if not r.complete else "CHECK FAILED")
        lines.append(f"- **{r.scenario}** ({status}) — {r.run_id} · chart `{png.name}`")
        lines += [f"  - {line}" for line in r.lesson]
    comparison = None
    store.recover_baseline(store.baselines_dir(results_dir) / baseline)
    if store.baselines_dir(results_dir).joinpath(baseline).is_dir():
        base_label, base_results = cmp.load_side(baseline, results_dir)
        history = cmp.load_history(results_dir, new)
        comparison = cmp.compare(base_label, base_results, "this run", new, thresholds, history=history)
        for attempt in range(confirm):
            suspects = sorted({r.scenario for r in comparison.regressions if r.metric in {"time", "ratio"}})
            if not suspects:
                break
            if on_confirm is not None:
                on_confirm(suspects, attempt + 1, confirm)
            again = session.run([s for s in scenarios if s.name in suspects], opts)
            comparison = cmp.confirm(comparison, cmp.compare(
                base_label, base_results, f"confirmation run {attempt + 1}", [r.result for r in again], thresholds,
                history=history))
        lines += ["", cmp.to_markdown(comparison)]
    else:
        lines += ["", f"No baseline `{baseline}` yet: nothing to compare. Make one with "
                      f"`labs baseline save {baseline}` and commit `results/baselines/{baseline}/`."]
    steps, drifts = _change_points(new, results_dir)
    if steps or drifts:
        lines += ["", "### Change points in the history", ""]
        lines += [f"- **new regression step** {f.scenario} · {f.row}: {(f.change - 1) * 100:+.1f}% at {f.commits} "
                  f"(p={f.p:.2g}, {f.support[0]}+{f.support[1]} runs)"
                  + (f"; dependencies changed: {'; '.join(f.dependencies)}" if f.dependencies else "") for f in steps]
        lines += [f"- drift {f.scenario} · {f.row}: {(f.change - 1) * 100:+.1f}% over the last {f.support[0]} runs "
                  f"(p={f.p:.2g})" for f in drifts]
    files += _history_charts(new, results_dir, out_dir)
    lines.append("\n_Load generator and server share the machine's cores; compare variants measured "
                 "in the same run (ratios), not absolute numbers across machines._")
    summary = "\n".join(lines) + "\n"
    files.append(store.write_text_atomic(out_dir / "summary.md", summary))
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a") as fh:
            fh.write(summary)
    problems = tuple(f"{r.scenario}: " + ("incomplete run: " + (r.reason or "?") if not r.complete
                                          else "a check failed") for r in new if not r.ok)
    problems += tuple(f"{f.scenario} · {f.row}: a new regression step of {(f.change - 1) * 100:+.1f}% "
                      f"({f.commits})" for f in steps)
    return Gate(tuple(runs), comparison, summary, tuple(files), problems, tuple(drifts))


def _change_points(new, results_dir: Path):
    """New regression steps (confirmed with this run) and drifts in the history of the new runs'
    scenarios, on their machine class."""
    from harness.results import history as hist
    from harness.results import trends

    steps, drifts = [], []
    for r in new:
        if not r.complete:
            continue
        runs = hist.collect(r.scenario, results_dir, trends.machine_class(r))
        items = trends.findings(runs)
        steps += trends.new_regressions(items, runs)
        drifts += [f for f in items if f.kind == "drift" and f.after.run_id == runs[-1].run_id]
    return steps, drifts


def _history_charts(new, results_dir: Path, out_dir: Path) -> list[Path]:
    from harness.results import history as hist

    files = []
    for r in new:
        try:
            h = hist.build(r.scenario, "ratio", hist.collect(r.scenario, results_dir))
            files += list(hist.write(h, out_dir))
        except LabsError:
            pass  # a scenario without history (or without ratios) has no history chart yet
    return files
