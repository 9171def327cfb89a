"""Helpers shared by scenario declarations (no process management, no printing)."""
from __future__ import annotations

from harness.errors import UsageError
from harness.scenario import Context

CATALOG = {"quick": 1_000, "full": 20_000}
"""Books in the shared catalog per profile; scenarios share it so a warm stack seeds once."""


def seed_catalog_for(ctx: Context, at_least: int = 0) -> None:
    from labs.bookstore.seed import seed_catalog

    size = int(ctx.params.get("catalog", CATALOG.get(ctx.profile, 1_000)))
    if at_least > size:
        raise UsageError(f"asked for {at_least} books but the catalog has {size}",
                         hint=f"raise it with --param catalog={at_least}")
    seed_catalog(size, ctx.seed)


def sql(query: str, params=None) -> list[tuple]:
    """Run one statement on the default connection; its rows (none for a statement without).
    Without parameters `%` stays an operator (the modulo), not a placeholder."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def sql_value(query: str, params=None):
    """The first column of the first row."""
    return sql(query, params)[0][0]
