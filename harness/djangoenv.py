"""Point the lab's Django project at a stack, once per process, and migrate it."""
from __future__ import annotations

import os

from harness.errors import StackError
from harness.stack import ENV_VARS, StackInfo

_configured_for: dict[str, str] | None = None


def setup(stack: StackInfo) -> None:
    """Export the stack's URLs, start Django and apply migrations (fast when up to date)."""
    global _configured_for
    env = stack.env()
    if _configured_for is not None:
        if _configured_for != env:
            raise StackError("Django is already configured for another stack in this process")
        return
    for var in ENV_VARS.values():
        os.environ.pop(var, None)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labs.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    _configured_for = env


def database_versions() -> dict[str, str]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        return {"postgres": cur.fetchone()[0]}
