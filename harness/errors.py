"""Errors a user can cause or fix. The CLI prints them as one clear message, never a traceback.

Exit codes (also documented in `labs --help`): 0 ok, 1 a check failed, 2 usage error,
3 stack error (a service would not start, died, or is unreachable), 130 interrupted.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_STACK = 3
EXIT_INTERRUPTED = 130


class LabsError(Exception):
    """Base class: `message` says what happened, `hint` what to do about it."""

    exit_code = EXIT_CHECK_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LabsError):
    exit_code = EXIT_USAGE


class StackError(LabsError):
    exit_code = EXIT_STACK


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The most similar choice to a mistyped name, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown(kind: str, name: str, choices: Iterable[str]) -> UsageError:
    choices = sorted(choices)
    guess = closest(name, choices)
    hint = f"did you mean {guess}?" if guess else None
    return UsageError(f"unknown {kind} {name!r} (choose from: {', '.join(choices)})", hint)


class LabsDeprecationWarning(FutureWarning):
    """An old name or field that still works but will go: shown to users (FutureWarning is shown
    by default, DeprecationWarning is not), with the new name to use."""


class Interrupted(LabsError):
    """Ctrl-C or SIGTERM stopped a command; `message` says what was kept (every child is stopped)."""

    exit_code = EXIT_INTERRUPTED
