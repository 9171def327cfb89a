"""labs asv publish · backfill: the asv history of this repository."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from harness.commands.console import err, out
from harness.errors import EXIT_CHECK_FAILED, EXIT_OK, Interrupted, unknown

COLOURS = {"recorded": "green", "skipped": "dim", "failed": "red"}


def asv_init_cmd() -> None:
    """asv for this repository: asv.conf.json and benchmarks/perflab_suite.py (kept if present)."""
    from harness.present import asvsite
    from harness.project import envinfo

    root = envinfo.project_root()
    written = asvsite.init(root)
    for path in written:
        out.print(f"wrote {path}", soft_wrap=True, highlight=False)
    if not written:
        out.print(f"asv is set up in {root} already")
    out.print("[dim]next: asv machine --yes --machine NAME && labs asv backfill HEAD~5..HEAD[/dim]")


def asv_publish_cmd(
    offline: Annotated[bool, typer.Option("--offline", help="Vendor the page's CDN scripts (from npm) so it opens offline.")] = False,
) -> None:
    """`asv publish` for this repository's asv results; --offline makes the site work with no network."""
    from harness.present import asvsite
    from harness.project import envinfo

    out.print(str(asvsite.publish(envinfo.project_root(), offline)), soft_wrap=True, highlight=False)


def asv_backfill_cmd(
    commits: Annotated[str, typer.Argument(help="A..B (the commits after A up to B, oldest first) or one commit.",
                                           show_default=False)],
    scenario: Annotated[Optional[list[str]], typer.Option("--scenario", "-s", help="Only these scenarios (repeatable).")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", help="quick, nightly or full.")] = "quick",
    param: Annotated[Optional[list[str]], typer.Option("--param", help="NAME=VALUE, passed to every run.")] = None,
    every: Annotated[int, typer.Option(help="Record every Nth commit of the range (the newest always).", min=1)] = 1,
    max_commits: Annotated[int, typer.Option(help="Refuse ranges longer than this.", min=1)] = 50,
    machine: Annotated[Optional[str], typer.Option(help="asv machine name (default: this machine's).")] = None,
    rerun: Annotated[bool, typer.Option("--rerun", help="Measure commits asv already holds again.")] = False,
    results_dir: Annotated[Optional[Path], typer.Option(
        help="Also keep each commit's lab result here, for `labs history` (default: results/ of the project; "
             "--no-results to keep none).")] = None,
    no_results: Annotated[bool, typer.Option("--no-results", help="Keep no lab results, only asv's.")] = False,
) -> None:
    """Record each commit of a range in asv, measured with that commit's own code (git worktrees).

    asv with an existing environment refuses ranges and measures whatever is installed; this checks
    every commit out into a temporary worktree and runs `asv run --set-commit-hash` on it."""
    from harness.measure.contract import PROFILES
    from harness.present import asvsite
    from harness.project import envinfo, registry
    from harness.session import parse_params

    if profile not in PROFILES:
        raise unknown("profile", profile, PROFILES)
    params = parse_params(param or [])
    names = []
    for name in scenario or []:
        registry.get(name)  # a typo fails here, with the closest name
        names.append(name)
    started = time.perf_counter()
    try:
        with err.status("backfilling…") as status:
            def show(i, n, commit, row):
                if row is None:
                    status.update(f"asv: measuring commit {i + 1}/{n} {commit.sha[:8]} {commit.subject[:50]}…")
                else:
                    colour = COLOURS[row.status]
                    err.print(f"[{colour}]{row.status:>8}[/{colour}] {commit.sha[:8]} {commit.subject[:60]}"
                              + (f"  ({row.seconds:.0f} s)" if row.seconds else ""), highlight=False)

            root = envinfo.project_root()
            keep = None if no_results else (results_dir or root / "results").resolve()
            rows = asvsite.backfill(root, commits, every=every, limit=max_commits, machine=machine,
                                    scenarios=names, profile=profile, params=params, rerun=rerun, on_commit=show,
                                    keep_results=keep)
    except KeyboardInterrupt:
        raise Interrupted("the commit being measured was stopped; the ones before it are recorded.") from None
    table = Table(title=f"asv backfill {commits} · {time.perf_counter() - started:.0f} s", title_justify="left")
    for col in ("commit", "subject", "status", "values", "seconds", "detail"):
        table.add_column(col, justify="right" if col in ("values", "seconds") else "left")
    for row in rows:
        colour = COLOURS[row.status]
        table.add_row(row.commit.sha[:8], row.commit.subject[:48], f"[{colour}]{row.status}[/{colour}]",
                      str(row.values), f"{row.seconds:.0f}" if row.seconds else "", row.detail[:80])
    out.print(table)
    out.print("[dim]next: labs asv publish --offline" + ("" if no_results else " · labs history --all") + "[/dim]")
    raise typer.Exit(EXIT_CHECK_FAILED if any(r.status == "failed" for r in rows) else EXIT_OK)


def register(app: typer.Typer) -> None:
    asv = typer.Typer(help="asv history: record a range of commits, publish the site.", no_args_is_help=True)
    asv.command("init")(asv_init_cmd)
    asv.command("publish")(asv_publish_cmd)
    asv.command("backfill")(asv_backfill_cmd)
    app.add_typer(asv, name="asv")
    app.command("asv-publish", hidden=True)(asv_publish_cmd)
