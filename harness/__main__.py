"""The `labs` entry point (also `python -m harness`).

Kept to the standard library so the interrupt handlers are in place before the slow imports
(typer, rich, Django): a Ctrl-C or SIGTERM in the first tenth of a second then ends with
"interrupted" and exit code 130, like every later one, instead of a KeyboardInterrupt traceback.
"""
from __future__ import annotations

import sys

from harness import interrupts


def drop_cwd_from_path() -> None:
    """`python -m harness` puts the current directory first on sys.path, where the `labs` console
    script does not: inside a project whose own packages are named `labs` or `scenarios`, that would
    hide the lab's. Both ways of starting labs see the same path (a project's own paths come from
    its labs.toml)."""
    import os

    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]


def main() -> None:
    interrupts.install()
    drop_cwd_from_path()
    try:
        from harness import cli
        # an interrupt an import swallowed (a bare `except:` in a library, a finalizer) is raised
        # here, before anything starts — not left for the end of a run that should not have begun
        interrupts.check()
    except BaseException:  # noqa: BLE001 — nothing has been started yet: nothing to stop
        # Python 3.11 wraps an exception raised in a class body's __set_name__ (dataclasses do
        # that while modules import) in a RuntimeError: the recorded request is the truth
        if not interrupts.requested():
            raise
        sys.stderr.write("interrupted\n")
        interrupts.finish(130)
    cli.main()


if __name__ == "__main__":
    main()
