"""`labs`: the command line. The commands live in `harness.commands`, one module per group; each
parses flags into plain options, calls the engine and renders what comes back.

User errors are raised as LabsError anywhere below and caught in one place (`LabsGroup.invoke`):
one clear line, a hint, and the error's exit code. Exit codes: 0 ok, 1 a check failed, 2 usage
error, 3 stack error, 130 interrupted.
"""
from __future__ import annotations

import os
import sys
import tempfile
import traceback
import warnings

import click
import typer
from typer.core import TyperGroup

from harness import interrupts
from harness.commands.console import err, say_interrupted, told_interrupt
from harness.measure.deadline import exit_despite_leaked_threads
from harness.errors import EXIT_INTERRUPTED, LabsError


class LabsGroup(TyperGroup):
    """The root group: the one place that turns a LabsError into a message and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LabsError as exc:
            fail(exc)


def fail(exc: LabsError) -> None:
    if exc.exit_code == EXIT_INTERRUPTED:
        say_interrupted(exc.message)
    else:
        err.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
        if exc.hint:
            err.print(f"[yellow]hint:[/yellow] {exc.hint}", highlight=False)
    raise typer.Exit(exc.exit_code)


app = typer.Typer(
    cls=LabsGroup,
    help="Perf Lab: reproducible, verified performance experiments for Django on a real stack.\n\n"
         "Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 stack error, 130 interrupted.",
    no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from harness.commands import asv, diagnose, load, regress, run, stack, tools, workshop

    for module in (run, diagnose, regress, load, stack, workshop, asv, tools):
        module.register(app)


_register()


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    # SIGINT and SIGTERM unwind from the first moment, so `finally` blocks stop every child
    interrupts.install()
    warnings.formatwarning = _one_line_warnings  # deprecations reach users as one line, not a stack
    code: int | str | None = 0
    try:
        interrupts.check()  # one that arrived while modules imported and was swallowed there
        app(prog_name="labs")
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except SystemExit as exc:  # typer ends every command this way; it turns an interrupt into Exit(130)
        code = exc.code
        if not interrupts.requested():
            raise
    except Exception:  # a bug, not a user error: keep the traceback out of the way but on disk
        if interrupts.requested():  # an interrupt wrapped by Python (a RuntimeError from __set_name__...)
            code = EXIT_INTERRUPTED
            if not told_interrupt():
                say_interrupted()
            interrupts.finish(code)
        fd, path = tempfile.mkstemp(prefix="labs-crash-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        exc = sys.exc_info()[1]
        err.print(f"[bold red]internal error:[/bold red] {exc!r}\nthe traceback is in {path}; please report it")
        sys.exit(70)
    if code != EXIT_INTERRUPTED and not interrupts.requested():
        exit_despite_leaked_threads(code, lambda text: err.print(f"[yellow]warning:[/yellow] {text}", highlight=False))
        sys.exit(code)
    # An interrupt arrived; every `finally` has run, so every child is stopped.
    if code == EXIT_INTERRUPTED and not told_interrupt():
        say_interrupted()
    interrupts.finish(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
