"""A case that never returns ends with "timed out" instead of hanging the run.

A deadline arms the process's real-time interval timer (SIGALRM) around one case: when it
fires, `CaseTimedOut` is raised in the main thread wherever it is (a Python loop, a socket read,
a sleep), the case is dropped with that reason and the run goes on with the next one. The rest
of the run is kept; the result is marked incomplete and names the case. Only the main thread can
take signals, so elsewhere (a test's worker thread) the deadline is not armed and says so.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

DEFAULT_CASE_TIMEOUT_S = 300.0
"""Generous on purpose: the longest built-in case (a load sweep on the full profile) takes ~90 s."""


class CaseTimedOut(BaseException):
    """A case ran past its deadline (raised from the SIGALRM handler). A BaseException, like
    KeyboardInterrupt: a variant's own `except Exception` must not swallow it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@contextlib.contextmanager
def deadline(seconds: float | None, what: str) -> Iterator[bool]:
    """Raise CaseTimedOut in this (main) thread after `seconds`; yields whether it is armed."""
    if not seconds or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield False
        return

    def fire(_signum, _frame):
        raise CaseTimedOut(f"{what} timed out after {seconds:g} s",
                           hint="a variant that never returns (a lock, a lost reply)? raise the limit with "
                                "--case-timeout if the case is just long")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def exit_despite_leaked_threads(code, say) -> None:
    """A scenario that leaked a non-daemon thread would keep the process alive after its result
    was saved (Python waits for such threads at exit): say so, and exit now anyway."""
    import os
    import sys

    leaked = [t for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not threading.main_thread()]
    if not leaked:
        return
    say(f"{len(leaked)} thread(s) still running at exit ({', '.join(t.name for t in leaked[:3])}): a scenario "
        "left them behind; exiting without waiting for them")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)
