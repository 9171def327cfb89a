"""Ctrl-C and SIGTERM, made reliable: both become KeyboardInterrupt, and the request is remembered.

The handler raises KeyboardInterrupt so blocking calls and `finally` blocks unwind at once (every
server we started is stopped on the way out). Python drops an exception raised while it runs a
finalizer or a weakref callback ("Exception ignored in ..."), so the handler also records the
request and `check()` — called by the runner between samples, rounds and cases — raises it again.
Standard library only: the entry point installs this before the slow imports.
"""
from __future__ import annotations

import os
import signal
import sys

_requested = False


def handler(signum, frame) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def requested() -> bool:
    return _requested


def check() -> None:
    """Raise the interrupt again if one arrived and was swallowed where Python could not raise it."""
    if _requested:
        raise KeyboardInterrupt


def _unraisable(hook):
    def quiet(info) -> None:  # an interrupt swallowed by a finalizer: `check()` re-raises it
        if not isinstance(info.exc_value, KeyboardInterrupt):
            hook(info)
    quiet.perflab = True
    return quiet


def install() -> None:
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if not getattr(sys.unraisablehook, "perflab", False):
        sys.unraisablehook = _unraisable(sys.unraisablehook)


def finish(code: int) -> None:
    """End the process with `code` after an interrupt, once every `finally` has run.

    Not a plain exit: CPython 3.11 remembers a KeyboardInterrupt raised inside exec()/eval()
    (dataclasses, namedtuple and typing use them while modules import) as "unhandled" even after
    it was caught, and would then kill itself with SIGINT at exit instead of returning `code`."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
