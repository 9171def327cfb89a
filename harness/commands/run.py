"""labs list · run · show · report · export: run scenarios and look at stored results."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from harness.commands.console import err, note, out, run_progress, warn
from harness.errors import EXIT_CHECK_FAILED, EXIT_OK, Interrupted, LabsError, unknown
from harness.project import registry
from harness.results import store

from harness.commands.options import OwnDatabase, ResultsDir, StackOpt  # noqa: E402
from harness.measure.deadline import DEFAULT_CASE_TIMEOUT_S  # noqa: E402

RunRef = Annotated[str, typer.Argument(metavar="RUN_ID|latest|previous|FILE", help="Which run.")]
Processes = Annotated[Optional[int], typer.Option(
    help="Fresh worker processes to spread the rounds over (default: 1 for quick, 5 for full); more "
         "processes make intervals hold between runs.", min=1, max=64)]
NoGc = Annotated[bool, typer.Option("--no-gc", help="Disable the garbage collector inside timed samples "
                                                    "(micro-comparisons; default: it runs, as in production).")]


def list_cmd(stack: Annotated[str, typer.Option(help="Stack to check availability against.")] = "embedded") -> None:
    """List scenarios: name, title, what they need, and whether this stack can run them."""
    from harness.tools import availability

    rows, problems = availability.scenarios(stack)
    table = Table(title=f"scenarios ({stack} stack)", title_justify="left")
    for col in ("name", "title", "needs", "optional", "available", "from"):
        table.add_column(col)
    for r in rows:
        if r.broken:
            table.add_row(r.name, "[red]cannot load[/red]", "", "", f"[red]{r.broken}[/red]", r.origin)
            continue
        avail = f"[red]no: {r.unavailable}[/red]" if r.unavailable else "[green]yes[/green]"
        if not r.unavailable and r.without:
            avail += f" [yellow](without {', '.join(r.without)})[/yellow]"
        table.add_row(r.name, r.title, ", ".join(r.needs), ", ".join(r.optional) or "—", avail, r.origin)
    out.print(table)
    for problem in problems:
        warn(problem)


def run_cmd(
    scenarios: Annotated[list[str], typer.Argument(help="Scenario names, or 'all'.", show_default=False)],
    profile: Annotated[str, typer.Option("--profile", "-p", help="quick (seconds, one process), nightly (5 processes: verdicts that hold between runs) or full (big data).")] = "quick",
    variants: Annotated[Optional[str], typer.Option(help="Comma-separated variants to run: only the cases that have them, each with its baseline.")] = None,
    stack: StackOpt = "embedded",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result JSON instead of the table.")] = False,
    results_dir: Annotated[Path, typer.Option(help="Where result files go.")] = Path("results"),
    seed: Annotated[int, typer.Option(help="Seed of the generated data and workloads.", min=0)] = 42,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Override a scenario parameter: NAME=VALUE.")] = None,
    no_lesson: Annotated[bool, typer.Option("--no-lesson", help="Do not print the lesson text.")] = False,
    no_chart: Annotated[bool, typer.Option("--no-chart", help="Do not write the PNG chart beside the result.")] = False,
    django_settings: Annotated[Optional[str], typer.Option(
        help="Measure your own Django project: its settings module (default: django_settings in labs.toml).")] = None,
    processes: Processes = None,
    no_gc: NoGc = False,
    own_database: OwnDatabase = False,
    case_timeout: Annotated[float, typer.Option(
        help="Seconds a case may run before it is dropped as timed out (the rest of the run is kept); 0: no "
             "limit.", min=0)] = DEFAULT_CASE_TIMEOUT_S,
) -> None:
    """Run scenarios: verify every variant, time them in interleaved rounds, save and show the result."""
    from harness.project.registry import Project
    from harness.session import LabSession, plan_run

    project = Project.resolve(django_settings)
    chosen, opts = plan_run(scenarios, profile=profile, variants=variants, params=param or [], project=project,
                            seed=seed, results_dir=results_dir, stack=stack, processes=processes, gc=not no_gc,
                            case_timeout_s=case_timeout)
    for problem in registry.registry().problems:
        warn(problem)
    session = LabSession(stack=stack, project=project, results_dir=results_dir, seed=seed, notify=note,
                         claim_database=own_database)
    try:
        with run_progress() as show:
            session.progress = show
            with session:
                runs = session.run(chosen, opts)
    except KeyboardInterrupt:
        raise Interrupted(session.interrupted_note()) from None
    show_runs(runs, json_out=json_out, lesson=not no_lesson, chart=not no_chart)
    raise typer.Exit(EXIT_OK if all(r.result.ok for r in runs) else EXIT_CHECK_FAILED)


def show_runs(runs, *, json_out: bool = False, lesson: bool = True, chart: bool = True) -> None:
    from harness.present import terminal

    for run in runs:
        png = write_chart(run.result, run.path) if chart else None
        if json_out:
            out.print_json(json.dumps(store.to_dict(run.result), default=str))
        else:
            terminal.terminal(run.result, out, lesson_text=run.scenario.lesson_text() if lesson else "")
            out.print(f"[dim]saved {run.path}" + (f" · chart {png}" if png else "") + "[/dim]")


def write_chart(result, path: Path) -> Path | None:
    """The run's chart beside its JSON; a chart failure never loses the (already saved) result."""
    from harness.present import charts

    try:
        return charts.result_png(result, path.with_suffix(".png"))
    except Exception as exc:  # noqa: BLE001 - a missing font or backend must not fail the run
        err.print(f"[yellow]no chart: {exc!r}[/yellow]")
        return None


def show_cmd(run_ref: RunRef = "latest", results_dir: ResultsDir = Path("results"),
             json_out: Annotated[bool, typer.Option("--json", help="Print the stored JSON.")] = False) -> None:
    """Show a stored result as a table (or JSON)."""
    from harness.present import terminal

    path = store.resolve(run_ref, results_dir)
    result = store.load(path)
    if json_out:
        out.print_json(json.dumps(store.to_dict(result), default=str))
    else:
        terminal.terminal(result, out)
        out.print(f"[dim]{path}[/dim]")
    raise typer.Exit(EXIT_OK if result.ok else EXIT_CHECK_FAILED)


def report_cmd(
    run_ref: RunRef = "latest",
    fmt: Annotated[str, typer.Option("--format", "-f", help="html (self-contained), md or png.")] = "html",
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write (default: beside the result).")] = None,
    open_it: Annotated[bool, typer.Option("--open", help="Open it in the default browser/viewer.")] = False,
    results_dir: ResultsDir = Path("results"),
) -> None:
    """Write a report of a run: HTML with charts (offline, no CDN), Markdown, or PNG."""
    from harness.present import report

    if fmt not in report.FORMATS:
        raise unknown("format", fmt, report.FORMATS)
    target = report.write(store.resolve(run_ref, results_dir), fmt, output)
    out.print(str(target), soft_wrap=True, highlight=False)
    if open_it:
        import webbrowser

        webbrowser.open(target.resolve().as_uri())


def export_cmd(
    run_ref: RunRef = "latest",
    fmt: Annotated[str, typer.Option("--format", "-f", help="pytest-benchmark (its JSON layout).")] = "pytest-benchmark",
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write (default: stdout).")] = None,
    results_dir: ResultsDir = Path("results"),
) -> None:
    """Export a run for other tools: pytest-benchmark's JSON (read by `pytest-benchmark compare` and Bencher)."""
    from harness.present import export

    if fmt not in export.FORMATS:
        raise unknown("export format", fmt, export.FORMATS)
    text = export.render(store.load(store.resolve(run_ref, results_dir)), fmt)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        store.write_text_atomic(output, text)
        out.print(str(output), soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
    app.command("run")(run_cmd)
    app.command("show")(show_cmd)
    app.command("report")(report_cmd)
    app.command("export")(export_cmd)


__all__ = ["register", "show_runs", "write_chart", "LabsError"]
