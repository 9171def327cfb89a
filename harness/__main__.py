"""The `labs` entry point (also `python -m harness`).

Kept to the standard library so the interrupt handlers are in place before the slow imports
(typer, rich, Django): a Ctrl-C or SIGTERM in the first tenth of a second then ends with
"interrupted" and exit code 130, like every later one, instead of a KeyboardInterrupt traceback.
"""
from __future__ import annotations

import sys

from harness import interrupts


def main() -> None:
    interrupts.install()
    try:
        from harness import cli
    except KeyboardInterrupt:  # nothing has been started yet: nothing to stop
        sys.stderr.write("interrupted\n")
        interrupts.finish(130)
    cli.main()


if __name__ == "__main__":
    main()
