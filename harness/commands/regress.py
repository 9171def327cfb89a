"""labs compare · baseline · history · ci: regressions between runs and over time."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from harness.commands.console import err, note, out, run_progress, warn
from harness.commands.options import OwnDatabase, StackOpt
from harness.errors import EXIT_CHECK_FAILED, EXIT_OK, Interrupted, UsageError, unknown
from harness.results import store

ResultsDir = Annotated[Path, typer.Option(help="Where result files are.")]
Thresholds = Annotated[Optional[list[str]], typer.Option("--threshold", "-t",
                       help="Minimum effect, e.g. time:25% or ratio:10% (defaults: time 25%, ratio 15%).")]
FORMATS = ("table", "markdown", "json")
Alpha = Annotated[float, typer.Option(help="Family-wise false-alarm rate over all timing rows (Holm).",
                                     min=0.0001, max=0.5)]


def _thresholds(items: list[str] | None):
    from harness.results.compare import Threshold

    return [Threshold.parse(t) for t in items or []]


def emit_comparison(comparison, fmt: str = "table", everything: bool = False) -> None:
    from harness.results import compare as cmp

    if fmt == "markdown":
        out.print(cmp.to_markdown(comparison, everything), markup=False, highlight=False, soft_wrap=True)
    elif fmt == "json":
        out.print_json(cmp.to_json(comparison))
    else:
        out.print(cmp.to_table(comparison, everything))
        for line in comparison.notes:
            out.print(f"[yellow]note:[/yellow] {line}")
        style = "bold red" if comparison.regressions else "green"
        out.print(f"[{style}]{cmp.summary_line(comparison)}[/{style}]")


def compare_cmd(
    base: Annotated[str, typer.Argument(help="Run id, file, directory, baseline name, or 'previous'.")] = "previous",
    new: Annotated[str, typer.Argument(help="Run id, file, directory, or 'latest'.")] = "latest",
    threshold: Thresholds = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, markdown or json.")] = "table",
    everything: Annotated[bool, typer.Option("--all", help="Show unchanged rows too.")] = False,
    results_dir: ResultsDir = Path("results"),
    alpha: Alpha = 0.05,
) -> None:
    """Verdicts per variant and metric: faster / slower / unchanged / incomparable. Exit 1 on regression.

    Timing gates are sized by each row's own noise: between processes, and between runs (the
    base's runs and a window of stored history of the same machine and profile)."""
    from harness.results import compare as cmp

    if fmt not in FORMATS:
        raise unknown("format", fmt, FORMATS)
    limits = _thresholds(threshold)
    new_label, new_results = cmp.load_side(new, results_dir)
    base_label, base_results = cmp.load_side(base, results_dir, relative_to=new_results)
    comparison = cmp.compare(base_label, base_results, new_label, new_results, limits,
                             history=cmp.load_history(results_dir, new_results), alpha=alpha)
    if not comparison.rows:
        raise UsageError(f"nothing was compared between {base_label} and {new_label}: "
                         + "; ".join(comparison.notes or ("no common scenario",)),
                         hint="compare runs of the same scenario (labs compare BASE NEW)")
    emit_comparison(comparison, fmt, everything)
    raise typer.Exit(EXIT_CHECK_FAILED if comparison.regressions else EXIT_OK)


def baseline_save(
    name: Annotated[str, typer.Argument(help="Baseline name, e.g. main.")],
    runs: Annotated[Optional[list[str]], typer.Argument(help="Runs to keep (default: newest complete run of each scenario).")] = None,
    results_dir: ResultsDir = Path("results"),
    count: Annotated[int, typer.Option("--runs", help="Keep the newest N complete runs of each scenario: the "
                                                      "baseline then carries its own run-to-run noise (fewer "
                                                      "are kept when fewer exist).",
                                       min=1, max=50)] = 3,
) -> None:
    """Copy runs into results/baselines/NAME/ (commit that folder: CI compares against it)."""
    for p in store.save_baseline(name, list(runs or []), results_dir, runs=count):
        out.print(f"baseline {name}: {p}")


def baseline_list(results_dir: ResultsDir = Path("results")) -> None:
    """Baselines and the runs they hold."""
    found = store.list_baselines(results_dir)
    if not found:
        out.print("no baselines (labs baseline save NAME)")
    for name, results in found.items():
        out.print(f"[bold]{name}[/bold]: " + ", ".join(f"{r.scenario} ({r.run_id}, {r.profile}, "
                                                        f"{(r.env.get('git_sha') or '?')[:7]})" for r in results))


def history_cmd(
    scenario: Annotated[Optional[str], typer.Argument(help="Scenario name (omit with --all).")] = None,
    metric: Annotated[str, typer.Option(help="time, ratio, or a counter (queries, cache_hits...).")] = "time",
    case: Annotated[Optional[str], typer.Option(help="Only this case (e.g. books=200).")] = None,
    variant: Annotated[Optional[str], typer.Option(help="Only this variant.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="One HTML dashboard of every scenario's history.")] = False,
    results_dir: ResultsDir = Path("results"),
    out_dir: Annotated[Optional[Path], typer.Option(help="Where the PNG and HTML go (default: RESULTS_DIR/history).")] = None,
) -> None:
    """Stored runs in commit order: a metric charted (regressions ringed), and every row's change points
    and drifts — with --all, one self-contained dashboard of the whole history."""
    from harness.project import registry
    from harness.results import history as hist
    from harness.results import trends

    target = out_dir or results_dir / "history"
    if everything:
        page, items = hist.dashboard(results_dir, target)
        _print_findings(items)
        out.print(f"{len(items)} change point(s) and drift(s)\n{page}")
        return
    if scenario is None:
        raise UsageError("name a scenario, or --all for every one", hint="labs history n_plus_one --metric ratio")
    registry.get(scenario)
    runs = hist.by_scenario(hist.collect(scenario, results_dir)).get(scenario, [])
    h = hist.build(scenario, metric, runs, case, variant)
    png, page = hist.write(h, target)
    items = [f for f in trends.findings(runs) if (case is None or f.case == case) and
             (variant is None or f.variant == variant)]
    _print_findings(items)
    flagged = sum(sum(m) for m in h.marks.values())
    out.print(f"{len(h.labels)} runs, {len(h.series)} series, {flagged} regression point(s), "
              f"{len(items)} change point(s) and drift(s)\n{png}\n{page}")


def _print_findings(items) -> None:
    if not items:
        return
    from rich.table import Table

    table = Table(title="change points and drifts", title_justify="left")
    for col in ("scenario", "row", "", "commits", "change [95% CI]", "p", "runs", "dependencies"):
        table.add_column(col)
    for f in items:
        change = f"{(f.change - 1) * 100:+.1f}%" + (f" [{(f.ci95[0] - 1) * 100:+.1f}%, {(f.ci95[1] - 1) * 100:+.1f}%]"
                                                   if f.ci95 and f.kind == "step" and f.p else "")
        table.add_row(f.scenario, f.row, f"[{'red' if f.worse else 'green'}]{f.kind}[/]", f.commits, change,
                      f"{f.p:.2g}", f"{f.support[0]}+{f.support[1]}" if f.kind == "step" else f"{f.support[0]}",
                      "; ".join(f.dependencies) or "—")
    out.print(table)


def ci_cmd(
    suite: Annotated[str, typer.Option(help="quick (every scenario, quick profile), nightly (5 processes each: the gate for a nightly job) or full (big data).")] = "quick",
    baseline: Annotated[str, typer.Option(help="Baseline to compare with (results/baselines/NAME).")] = "main",
    scenarios: Annotated[Optional[list[str]], typer.Option("--scenario", help="Limit to these scenarios.")] = None,
    threshold: Thresholds = None,
    stack: StackOpt = "embedded",
    own_database: OwnDatabase = False,
    results_dir: Annotated[Path, typer.Option(help="Where result files go.")] = Path("results"),
    out_dir: Annotated[Path, typer.Option(help="Summary and charts for the CI job's artifacts.")] = Path("ci-out"),
    confirm: Annotated[int, typer.Option(help="Re-run a scenario whose timings regressed this many times; "
                                              "only regressions seen every time count.", min=0, max=5)] = 1,
    django_settings: Annotated[Optional[str], typer.Option(help="Your project's Django settings (default: "
                                                                "labs.toml).")] = None,
    against: Annotated[Optional[str], typer.Option(
        help="A git ref (origin/main, a tag, the last measured commit) to measure in the same job, in paired "
             "processes interleaved with this tree: sees 3-5 % where stored baselines see 25 %.")] = None,
) -> None:
    """Nightly job: run the suite, compare with the baseline, write summary and charts; exit 1 on regression.

    With --against REF, REF and this tree are measured in one job (pairs of processes taking turns
    round by round) and judged from the per-pair differences; a suspect row earns a second stage
    of pairs. Without
    it, the run is compared with the stored baseline and timing regressions are confirmed by a re-run.
    The markdown summary also goes to $GITHUB_STEP_SUMMARY."""
    from harness.ci import SUITES, gate, paired_gate
    from harness.project.registry import Project
    from harness.session import LabSession, plan_run

    if suite not in SUITES:
        raise unknown("suite", suite, SUITES)
    limits = _thresholds(threshold)
    project = Project.resolve(django_settings)
    chosen, opts = plan_run(list(scenarios or ["all"]), profile=SUITES[suite], variants=None, params=[],
                            project=project, results_dir=results_dir, stack=stack)

    def confirming(suspects, attempt, total) -> None:
        note(f"timing regression in {', '.join(suspects)}: re-running to confirm ({attempt}/{total})")

    def staging(scenario, stage, pairs, lockstep) -> None:
        how = "taking turns round by round" if lockstep else "one process after the other (it times itself)"
        note(f"{scenario}: stage 1, {pairs} pairs of processes of {against} and this tree, {how}"
             if stage == 1 else f"{scenario}: a row leans slower: stage 2 adds {pairs} pairs")
    from harness.results import store

    session = LabSession(stack=stack, project=project, results_dir=results_dir, notify=note,
                         claim_database=own_database)
    try:
        with store.locked_dir(out_dir, "labs ci"), run_progress() as show:
            session.progress = show
            with session:
                if against:
                    result = paired_gate(session, chosen, opts, against, limits, confirm, out_dir, suite, baseline,
                                         on_stage=staging)
                else:
                    result = gate(session, chosen, opts, baseline, limits, confirm, out_dir, suite,
                                  on_confirm=confirming)
    except KeyboardInterrupt:
        raise Interrupted(session.interrupted_note()) from None
    if result.comparison is not None:
        emit_comparison(result.comparison)
    out.print(f"[dim]summary: {out_dir / 'summary.md'}[/dim]")
    for problem in result.problems:
        warn(problem)
    if result.regressions:
        err.print(f"[bold red]{result.regressions} regression(s) against baseline {baseline}[/bold red]")
    raise typer.Exit(EXIT_CHECK_FAILED if result.failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)
    baseline = typer.Typer(help="Named sets of results that `labs compare` and `labs ci` compare against.",
                           no_args_is_help=True)
    baseline.command("save")(baseline_save)
    baseline.command("list")(baseline_list)
    app.add_typer(baseline, name="baseline")
    app.command("history")(history_cmd)
    app.command("ci")(ci_cmd)
