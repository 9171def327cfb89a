"""`labs ci` as a composition: run the suite (a session), compare with a baseline, confirm timing
regressions by measuring again, write the summary and charts — as asv's `continuous` composes
its `run` and `compare`. Pure of any CLI: `gate(...)` returns a `Gate` the CLI renders, so tests
call it in-process.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.errors import LabsError
from harness.measure.contract import Scenario
from harness.measure.runner import RunOptions
from harness.results import compare as cmp
from harness.results import store
from harness.results.compare import Comparison, Threshold
from harness.results.model import Result
from harness.session import LabSession, SavedRun

SUITES = {"quick": "quick", "nightly": "nightly", "full": "full"}
"""Suite name -> profile."""
LAST_MEASURED = "last-measured"
"""`--against last-measured`: the newest commit with a complete stored run (a nightly job)."""


def last_measured(results_dir: Path, head: str, root: Path) -> str | None:
    """The commit of the newest complete stored run that is not HEAD and that this repository has."""
    import subprocess

    for path in reversed(store.list_runs(results_dir)):
        try:
            r = store.load(path)
        except LabsError:
            continue
        sha = r.env.get("git_sha")
        if not r.complete or not sha or sha == head or str(sha).endswith("-dirty"):
            continue
        known = subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=root, capture_output=True)
        if known.returncode == 0:
            return str(sha)
    return None


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
         suite: str = "quick", on_confirm=None, notes: Sequence[str] = (), publish: bool = True) -> Gate:
    """Run, compare with `baseline` (results_dir/baselines/NAME), re-run scenarios whose timings
    regressed `confirm` times (only regressions seen every time count), then write
    out_dir/summary.md (and $GITHUB_STEP_SUMMARY), one chart per run and history charts."""
    results_dir = session.results_dir
    runs = session.run(scenarios, opts)
    new = [r.result for r in runs]
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"## Perf Lab · suite {suite} · {len(new)} scenario(s)", ""]
    files = _run_lines(runs, out_dir, lines)
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
    lines += [f"\n_{n}_" for n in notes]
    summary, path = _summary(out_dir, lines, publish)
    files.append(path)
    problems = _run_problems(new)
    problems += tuple(f"{f.scenario} · {f.row}: a new regression step of {(f.change - 1) * 100:+.1f}% "
                      f"({f.commits})" for f in steps)
    return Gate(tuple(runs), comparison, summary, tuple(files), problems, tuple(drifts))


def _run_lines(runs: Sequence[SavedRun], out_dir: Path, lines: list[str]) -> list[Path]:
    """One summary line per run (its status, its chart, its lesson) appended to `lines`; the charts."""
    from harness.present import charts

    files = []
    for run in runs:
        r = run.result
        png = charts.result_png(r, out_dir / f"{r.run_id}.png")
        files.append(png)
        status = "ok" if r.ok else ("incomplete" if not r.complete else "CHECK FAILED")
        lines.append(f"- **{r.scenario}** ({status}) — {r.run_id} · chart `{png.name}`")
        lines += [f"  - {line}" for line in r.lesson]
    return files


def _summary(out_dir: Path, lines: Sequence[str], publish: bool = True) -> tuple[str, Path]:
    """The summary as markdown, written to out_dir/summary.md and (publish) $GITHUB_STEP_SUMMARY."""
    summary = "\n".join(lines) + "\n"
    path = store.write_text_atomic(out_dir / "summary.md", summary)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step and publish:
        with open(step, "a") as fh:
            fh.write(summary)
    return summary, path


def _run_problems(results: Sequence[Result]) -> tuple[str, ...]:
    return tuple(f"{r.scenario}: " + ("incomplete run: " + (r.reason or "?") if not r.complete
                                      else "a check failed") for r in results if not r.ok)


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


def paired_gate(session: LabSession, scenarios: Sequence[Scenario], opts: RunOptions, against: str,
                thresholds: Sequence[Threshold] = (), confirm: int = 1, out_dir: Path = Path("ci-out"),
                suite: str = "quick", baseline: str = "main", on_stage=None,
                stage_pairs: tuple[int, int] | None = None) -> Gate:
    """`labs ci --against REF`: measure REF (a worktree) and the working tree in paired processes
    on the session's stack (harness.measure.commits), judge each timing row from the per-pair
    differences in up to two stages (harness.results.paired), counters exactly; a scenario whose
    base side cannot run falls back to the stored baseline `baseline`, saying so."""
    import time

    from harness.measure import commits
    from harness.measure.runner import new_run_id
    from harness.measure.workers import _stack_dict
    from harness.project import registry
    from harness.results import paired

    stages = stage_pairs or commits.STAGE_PAIRS
    minimum = {t.metric: t.fraction for t in thresholds if t.metric in paired.GATED}
    root = commits.repo_root()
    rel = Path.cwd().resolve().relative_to(root)
    head = commits.head_commit(root)
    if against == LAST_MEASURED:
        found = last_measured(session.results_dir, head, root)
        if found is None:
            # nothing measured before (a first night): the stored-baseline gate, said in the summary
            note = (f"No earlier commit was measured in `{session.results_dir}/` (`--against {LAST_MEASURED}`): "
                    f"compared with the stored baseline `{baseline}` instead.")
            result = gate(session, scenarios, opts, baseline, thresholds, confirm, out_dir, suite, notes=[note])
            return replace(result, problems=result.problems + (() if result.comparison is not None else (
                f"no earlier commit measured and no baseline `{baseline}`: nothing was compared",)))
        against = found
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: list[SavedRun] = []
    comparisons: list[Comparison] = []
    fallback: list[Scenario] = []
    notes: list[str] = []
    with commits.worktree(against, root) as (tree, sha):
        for sc in scenarios:
            settings = None if registry.is_builtin(sc.name) else opts.django_settings
            sc_opts = session.scenario_opts(sc, opts)
            run = commits.PairedRun(sc.name, commits.Side("base", tree / rel, sha, "_base"),
                                    commits.Side("candidate", None, head, ""))
            run_id, started, env = new_run_id(sc.name), time.time(), session.env()
            args = (sc.name, settings, sc_opts, _stack_dict(session._info()), env)
            lockstep = commits.can_lockstep(sc)
            try:
                if on_stage:
                    on_stage(sc.name, 1, stages[0], lockstep)
                if lockstep:
                    # pair 0 process after process (it counts, checks and calibrates both sides), then
                    # lockstep pairs: the two sides take turns round by round
                    commits.run_pairs(run, *args, 1, session.progress, run_id)
                    commits.run_lockstep_pairs(run, *args, stages[0] - 1, session.progress, run_id)
                else:
                    commits.run_pairs(run, *args, stages[0], session.progress, run_id)
            except commits.BaseUnavailable as exc:
                notes.append(f"{sc.name}: the base commit {sha[:10]} cannot run it ({exc.message}); compared with "
                             f"the stored baseline `{baseline}` instead")
                fallback.append(sc)
                continue
            staged = [paired.tests_from({k: commits.pair_diffs(run, *k) for k in commits.rows_of(run)})]
            looks = 2 if confirm > 0 else 1
            suspect = paired.suspects(staged[0], paired.judge(staged[0], paired.ALPHA / looks, minimum), minimum)
            if suspect and confirm > 0:
                if on_stage:
                    on_stage(sc.name, 2, stages[1], lockstep)
                (commits.run_lockstep_pairs if lockstep else commits.run_pairs)(
                    run, *args, stages[1], session.progress, run_id)
                staged.append(paired.tests_from({k: commits.pair_diffs(run, *k) for k in commits.rows_of(run)}))
            base_result = commits.side_result(run, run.base, sc, sc_opts, run_id, started, env)
            cand_result = commits.side_result(run, run.candidate, sc, sc_opts, run_id, started, env)
            comparison = paired.compare_paired(f"{against} ({sha[:10]})", base_result, f"this tree ({head[:10]})",
                                               cand_result, staged, minimum, looks=looks)
            # the paired changes travel with the candidate's result: the history of paired nights
            changes = [{"case": r.case, "variant": r.variant, "metric": r.metric, "change": r.change,
                        "ci95": list(r.ci95) if r.ci95 else None, "p": r.p, "verdict": r.verdict}
                       for r in comparison.rows if r.metric in paired.GATED]
            cand_result = replace(cand_result, env={**cand_result.env, "paired": {
                **cand_result.env["paired"], "changes": changes}})
            store.save(base_result, session.results_dir)
            runs.append(SavedRun(cand_result, store.save(cand_result, session.results_dir), sc))
            comparisons.append(comparison)
    lines = [f"## Perf Lab · suite {suite} · {len(scenarios)} scenario(s) · against {against}", ""]
    files = _run_lines(runs, out_dir, lines)
    problems = _run_problems([r.result for r in runs])
    comparison = None
    if comparisons:
        comparison = Comparison(comparisons[0].base_label, comparisons[0].new_label,
                                tuple(row for c in comparisons for row in c.rows), comparisons[0].thresholds,
                                tuple(n for c in comparisons for n in c.notes) + tuple(notes), paired.ALPHA,
                                comparisons[0].method)
        lines += ["", cmp.to_markdown(comparison)]
    elif notes:
        lines += ["", *[f"- {n}" for n in notes]]
    if fallback:
        # the stored-baseline gate for what the base commit could not run (its summary is part of this one)
        rest = gate(session, fallback, opts, baseline, thresholds, confirm, out_dir / "fallback", suite,
                    publish=False)
        runs += rest.runs
        lines += ["", "### Compared with the stored baseline (the base commit could not run these)", "", rest.summary]
        problems += rest.problems
        if rest.comparison is not None:
            comparison = rest.comparison if comparison is None else replace(
                comparison, rows=comparison.rows + rest.comparison.rows, notes=comparison.notes + rest.comparison.notes)
        elif comparison is None:
            problems += tuple(f"{s.name}: no base to compare with (base commit cannot run it, no baseline "
                              f"`{baseline}`)" for s in fallback)
    summary, path = _summary(out_dir, lines)
    return Gate(tuple(runs), comparison, summary, (*files, path), problems)
