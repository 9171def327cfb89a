"""The `labs` entry point (also `python -m harness`).

Kept to the standard library so the interrupt handlers are in place before the slow imports
(typer, rich, Django): a Ctrl-C or SIGTERM in the first tenth of a second then ends with
"interrupted" and exit code 130, like every later one, instead of a KeyboardInterrupt traceback.
"""
from __future__ import annotations

import os
import signal
import sys

from harness import interrupts


def main() -> None:
    interrupts.install()
    try:
        from harness import cli
    except KeyboardInterrupt:  # nothing has been started yet: nothing to stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        os._exit(130)  # see cli.main: a plain exit could still end by SIGINT on CPython 3.11
    cli.main()


if __name__ == "__main__":
    main()
