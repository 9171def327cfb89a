"""labs workshop list · start · hint · solution · reset · makemigrations, labs check N."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.commands.console import confirm, err, out
from harness.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
    UsageError,
)

Number = Annotated[int, typer.Argument(help="Exercise number.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")]


def workshop_list() -> None:
    """The exercises and your progress."""
    from harness.workshop import exercises as ws

    progress = ws.load_progress()
    table = Table(title="workshop exercises", title_justify="left")
    for col in ("#", "exercise", "goal", "status", "attempts"):
        table.add_column(col)
    for ex in ws.EXERCISES.values():
        entry = progress.get(str(ex.number), {})
        status = entry.get("status", "not started")
        style = {"passed": "green", "failing": "yellow"}.get(status, "dim")
        table.add_row(str(ex.number), ex.title, ex.goal, f"[{style}]{status}[/{style}]", str(entry.get("attempts", 0)))
    out.print(table)
    out.print("[dim]start with: labs workshop start 1[/dim]")


def workshop_init(
    directory: Annotated[Path, typer.Argument(help="A new (or empty) folder for your exercises.")] = Path("perflab-workshop"),
) -> None:
    """Copy the exercises into a folder you own (your editor opens it, git can track it)."""
    from harness.workshop import exercises as ws

    workspace = ws.init(directory)
    out.print(f"the workshop is in {workspace.root}\n[dim]next: cd {directory} && labs workshop start 1[/dim]")


def workshop_start(number: Number) -> None:
    """What to do, where the code is, and the budget to meet."""
    from harness.workshop import exercises as ws

    ex, entry, brief, paths = ws.start(number)
    files = "\n".join(f"  {p}" for p in paths)
    out.print(f"[bold]Exercise {ex.number}: {ex.title}[/bold]\n\nEdit:\n{files}\n\n[bold]Goal:[/bold] {ex.goal}\n")
    out.print(brief, markup=False, highlight=False)
    out.print(f"\n[dim]status: {entry['status']} · check: labs check {number} · stuck: labs workshop hint {number}[/dim]")


def workshop_hint(number: Number) -> None:
    """The next hint (each call reveals one more)."""
    from harness.workshop import exercises as ws

    hints = ws.reveal_hint(number)
    total = len(ws.get(number).hints)
    for i, hint in enumerate(hints, 1):
        out.print(f"[yellow]hint {i}/{total}:[/yellow] {hint}")


def workshop_solution(number: Number, yes: Yes = False) -> None:
    """Show the reference solution (asks first: it spoils the exercise)."""
    from rich.syntax import Syntax

    from harness.workshop import exercises as ws

    ex = ws.get(number)
    if not yes and not confirm(f"Show the solution of exercise {number}? It spoils the fun"):
        raise UsageError("not shown", hint="pass --yes to skip the question")
    for path in ex.solution_files():
        out.print(f"[bold]{path}[/bold]")
        out.print(Syntax(path.read_text(), "python", line_numbers=False))


def workshop_reset(number: Number, yes: Yes = False) -> None:
    """Restore the original exercise files (yours are kept as .bak files; asks first)."""
    from harness.workshop import exercises as ws

    ex = ws.get(number)
    changed = ws.modified(ex)
    if not changed:
        out.print(f"exercise {number} is already in its original state")
        return
    if not yes and not confirm(f"Replace your changes to {', '.join(changed)} with the original?"):
        raise UsageError("nothing changed", hint="pass --yes to reset without the question")
    backups = ws.reset(ex)
    ws.record(number, status="not started", attempts=0, hints=0)
    for b in backups:
        out.print(f"your version is kept as {b}")
    out.print(f"exercise {number} restored")


def workshop_makemigrations() -> None:
    """Create the migration for your changes to the exercise-2 models.py."""
    from harness.workshop import exercises as ws

    ok, text = ws.makemigrations()
    out.print(text, markup=False, highlight=False)
    raise typer.Exit(0 if ok else EXIT_USAGE)


def check_cmd(number: Number, stack: Annotated[str, typer.Option(help="embedded or external.")] = "embedded") -> None:
    """Measure your code for exercise N against the original, on the real stack: pass, or the next hint."""
    from harness.present import terminal
    from harness.session import LabSession
    from harness.workshop import exercises as ws

    ws.get(number)  # a wrong number fails before any server starts
    try:
        with err.status(f"checking exercise {number} on the {stack} stack…"), LabSession(stack=stack) as session:
            attempt = ws.check(session, number)
    except KeyboardInterrupt:
        raise Interrupted("every service it started was stopped") from None
    verdict = attempt.verdict
    if verdict.result is not None:
        terminal.terminal(verdict.result, out)
    if verdict.passed:
        out.print(f"[bold green]PASS[/bold green] exercise {number}: {verdict.summary}")
        if attempt.next_exercise:
            out.print(f"[dim]next: labs workshop start {attempt.next_exercise}[/dim]")
        raise typer.Exit(EXIT_OK)
    out.print(f"[bold red]NOT YET[/bold red] exercise {number}: {verdict.summary}")
    for d in verdict.details:
        out.print(f"  [red]✗[/red] {d}")
    out.print(f"[yellow]hint:[/yellow] {attempt.hint}")
    raise typer.Exit(EXIT_CHECK_FAILED)


def register(app: typer.Typer) -> None:
    ws = typer.Typer(help="Hands-on exercises: fix slow code, then `labs check N`.", no_args_is_help=True)
    ws.command("init")(workshop_init)
    ws.command("list")(workshop_list)
    ws.command("start")(workshop_start)
    ws.command("hint")(workshop_hint)
    ws.command("solution")(workshop_solution)
    ws.command("reset")(workshop_reset)
    ws.command("makemigrations")(workshop_makemigrations)
    app.add_typer(ws, name="workshop")
    app.command("check")(check_cmd)
