"""labs explain · profile: see why a variant costs what it costs (outside any measured run)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from harness.commands.console import err, out
from harness.errors import Interrupted, unknown

Profile = Annotated[str, typer.Option("--profile", "-p", help="quick, nightly or full.")]
Params = Annotated[Optional[list[str]], typer.Option("--param", help="NAME=VALUE.")]
from harness.commands.options import OwnDatabase  # noqa: E402
from harness.commands.options import StackOpt as Stack  # noqa: E402
Settings = Annotated[Optional[str], typer.Option(help="Your project's Django settings (default: labs.toml).")]


def _on_stack(scenario: str, stack: str, profile: str, params: list[str] | None, variant: str | None,
              case: str | None, django_settings: str | None, fn: Callable[[Any], Any], own_database: bool = False):
    """Validate names (before any server starts), then open a session, seed the scenario and call
    fn(prepared) with it."""
    from harness.measure.contract import PROFILES
    from harness.project import registry
    from harness.project.registry import Project
    from harness.session import LabSession, parse_params
    from harness.tools import diagnose

    if profile not in PROFILES:
        raise unknown("profile", profile, PROFILES)
    sc = registry.get(scenario)
    overrides = parse_params(params or [])
    diagnose.validate(sc, profile, overrides, variant, case)
    try:
        with err.status(f"starting the {stack} stack and seeding {sc.name}…"), \
                LabSession(stack=stack, project=Project.resolve(django_settings),
                           claim_database=own_database) as session, \
                session.prepared(sc, profile, overrides) as prep:
            return fn(prep)
    except KeyboardInterrupt:
        raise Interrupted("every service it started was stopped") from None


def explain_cmd(
    scenario: Annotated[str, typer.Argument(help="Scenario name.")],
    variant: Annotated[Optional[str], typer.Option(help="Only this variant.")] = None,
    case: Annotated[Optional[str], typer.Option(help="Only this case (e.g. books=50).")] = None,
    profile: Profile = "quick", param: Params = None, stack: Stack = "embedded", django_settings: Settings = None,
    own_database: OwnDatabase = False,
    analyze_writes: Annotated[bool, typer.Option(
        "--analyze-writes", help="Also run statements that write under EXPLAIN ANALYZE, inside a transaction "
                                 "that is rolled back (default: they are only planned).")] = False,
) -> None:
    """The SQL each variant runs, with EXPLAIN (ANALYZE, BUFFERS) as a tree; the costliest node in red.

    Reads run in a READ ONLY transaction that is rolled back; writes are planned, not run."""
    from harness.present.plans import plan_tree
    from harness.tools import diagnose

    items = _on_stack(scenario, stack, profile, param, variant, case, django_settings,
                      lambda prep: diagnose.explain(prep, variant, case, analyze_writes), own_database)
    if not items:
        out.print("no SQL ran for that selection")
    for item in items:
        out.print(plan_tree(item))


def profile_cmd(
    scenario: Annotated[str, typer.Argument(help="Scenario name.")],
    variant: Annotated[str, typer.Option(help="The variant to profile.")],
    case: Annotated[Optional[str], typer.Option(help="Which case (default: the first that has the variant).")] = None,
    seconds: Annotated[float, typer.Option(help="How long to run it under the profiler.", min=0.1, max=600)] = 2.0,
    profile: Profile = "quick", param: Params = None, stack: Stack = "embedded",
    out_dir: Annotated[Path, typer.Option(help="Where the profile files go.")] = Path("results/profiles"),
    django_settings: Settings = None,
    own_database: OwnDatabase = False,
) -> None:
    """Run one variant under pyinstrument: HTML + speedscope JSON, and the SQL it ran with timings."""
    from harness.tools import diagnose

    res = _on_stack(scenario, stack, profile, param, variant, case, django_settings,
                    lambda prep: diagnose.profile(prep, out_dir, variant, case, seconds), own_database)
    out.print(res["text"], markup=False, highlight=False)
    table = Table(title=f"SQL of {res['variant']} ({res['case']}), {res['units']} units", title_justify="left")
    for col in ("total ms", "calls", "avg ms", "statement"):
        table.add_column(col, justify="right" if col != "statement" else "left")
    for total, n, sql in res["top_sql"]:
        table.add_row(f"{total * 1000:.1f}", str(n), f"{total / n * 1000:.3f}", sql[:120])
    out.print(table)
    out.print(f"[dim]{res['html']}\n{res['speedscope']}\n{res['sql']}[/dim]")


def register(app: typer.Typer) -> None:
    app.command("explain")(explain_cmd)
    app.command("profile")(profile_cmd)
