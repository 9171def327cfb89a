"""Options several commands share, declared once (one help text, one default)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

StackOpt = Annotated[str, typer.Option(help="embedded (default: starts its own servers), external "
                                            "(DATABASE_URL, REDIS_URL...) or docker (docker compose).")]
OwnDatabase = Annotated[bool, typer.Option(
    "--i-own-this-database",
    help="With --stack external: DATABASE_URL names an empty database of yours that the lab may take "
         "over (it creates, truncates and drops its tables there). A database with tables of its own is "
         "refused anyway; without this flag only a database the lab created is used.")]
ResultsDir = Annotated[Path, typer.Option(help="Where result files are.")]
