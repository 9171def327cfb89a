"""Where the CLI writes: `out` (results, pipeable) and `err` (progress, warnings, errors)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

# Piped output (CI logs, files) gets a readable width instead of rich's 80-column fallback.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)

_told_interrupt = False


def warn(text: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {text}", highlight=False)


def note(text: str) -> None:
    err.print(f"[yellow]{text}[/yellow]", highlight=False)


def say_interrupted(text: str = "") -> None:
    """Tell the user once that the command was interrupted (and what was kept)."""
    global _told_interrupt
    if not _told_interrupt:
        err.print("[bold red]interrupted[/bold red]" + (f": {text}" if text else ""))
    _told_interrupt = True


def told_interrupt() -> bool:
    return _told_interrupt


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False  # never destroy or spoil anything without an answer
    return typer.confirm(question, default=False)


LABELS = {"seed": "seeding", "verify": "verifying", "measure": "measuring", "done": "done",
          "worker": "starting a worker process"}


@contextmanager
def run_progress() -> Iterator[Callable]:
    """A progress display for the runner's events: bars on a terminal; piped (CI logs), one plain
    line each time a scenario enters a new phase of a case, so a long job shows where it is."""
    if not err.is_terminal:
        yield _plain_progress()
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=err, transient=True)
    tasks: dict[str, int] = {}
    labels = LABELS

    def show(ev) -> None:
        task = tasks.get(ev.scenario)
        if task is None:
            task = tasks[ev.scenario] = progress.add_task(ev.scenario, total=1.0)
        done = (ev.case_index + ev.fraction) / ev.cases if ev.cases else 0.0
        progress.update(task, completed=1.0 if ev.phase == "done" else done,
                        description=f"{ev.scenario} · {ev.case or ''} {labels.get(ev.phase, ev.phase)}")
        if ev.phase == "done":
            progress.remove_task(task)
            tasks.pop(ev.scenario, None)

    with progress:
        yield show


def _plain_progress() -> Callable:
    seen: set[tuple] = set()

    def show(ev) -> None:
        key = (ev.scenario, ev.case, ev.phase, getattr(ev, "process", 0))
        if key in seen:
            return
        seen.add(key)
        where = " · ".join(x for x in (ev.scenario, ev.case) if x)
        procs = getattr(ev, "processes", 1)
        extra = f" (process {getattr(ev, 'process', 0) + 1}/{procs})" if procs > 1 else ""
        err.print(f"[dim]· {where} {LABELS.get(ev.phase, ev.phase)}{extra}[/dim]", highlight=False)
    return show
