"""labs new scenario: scaffolding."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from harness.commands.console import out


def new_scenario(
    name: Annotated[str, typer.Argument(help="Scenario name (lowercase, digits, underscores).")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write it (added to labs.toml).")] = Path("perf_scenarios"),
    title: Annotated[Optional[str], typer.Option(help="One-line title.")] = None,
) -> None:
    """Write a documented, runnable scenario skeleton (variants, a metric, a check, a lesson, a test)."""
    from harness.tools import scaffold

    done = scaffold.new_scenario(name, directory, title)
    for path in done.files:
        out.print(f"wrote {path}", soft_wrap=True, highlight=False)
    if done.config_written:
        out.print(f"wrote {done.config_written}", soft_wrap=True, highlight=False)
    if done.config_hint:
        out.print(f"[yellow]{done.config_hint}[/yellow]")
    out.print(f"next: labs run {name}")


def register(app: typer.Typer) -> None:
    new = typer.Typer(help="Create things: a scenario skeleton.", no_args_is_help=True)
    new.command("scenario")(new_scenario)
    app.add_typer(new, name="new")
