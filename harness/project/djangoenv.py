"""Point the lab's Django project at a stack, once per process, and migrate it."""
from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator

from harness.errors import StackError
from harness.stack import ENV_VARS, StackInfo

_configured_for: dict[str, str] | None = None


def setup(stack: StackInfo, user_settings: str | None = None, migrate: bool = True) -> None:
    """Export the stack's URLs, start Django and apply migrations (fast when up to date).

    `user_settings`: measure a user's project instead of the lab's (see harness.project.user_settings):
    its migrations run against a database of the lab's own on this stack."""
    global _configured_for
    env = stack.env()
    key = {**env, "user_settings": user_settings or ""}
    if _configured_for is not None:
        if _configured_for != key:
            raise StackError("Django is already configured for another stack in this process")
        return
    for var in ENV_VARS.values():
        os.environ.pop(var, None)
    suffix = os.environ.get("LABS_DB_SUFFIX", "")
    if suffix and not user_settings and "DATABASE_URL" in env:
        # one side of a commit pair (harness.measure.commits): the lab's project in its own database
        from harness.stack import ensure_database
        from harness.stack.urls import database_name, with_database

        env["DATABASE_URL"] = with_database(env["DATABASE_URL"], database_name(env["DATABASE_URL"]) + suffix)
        ensure_database(env["DATABASE_URL"])
    os.environ.update(env)
    if user_settings:
        import importlib.util

        try:
            found = importlib.util.find_spec(user_settings) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            from harness.errors import UsageError

            raise UsageError(f"cannot import the Django settings module {user_settings!r}",
                             hint="run from your project's directory, or set pythonpath in labs.toml")
        os.environ["LABS_USER_SETTINGS"] = user_settings
        os.environ["DJANGO_SETTINGS_MODULE"] = "harness.project.user_settings"
        from harness.stack import ensure_database

        ensure_database(user_database_url(env["DATABASE_URL"], user_settings))
    else:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labs.settings")
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:  # a worker process after the first finds the schema migrated already
        call_command("migrate", verbosity=0, interactive=False)
    _configured_for = key


def database_from_url(url: str) -> dict:
    from harness.stack.urls import PG_OPTIONS

    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    options = {k: v for k, v in query.items() if k in PG_OPTIONS}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": urllib.parse.unquote(parts.path.lstrip("/")) or "perflab",
        "USER": urllib.parse.unquote(parts.username or ""),
        "PASSWORD": urllib.parse.unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        "CONN_MAX_AGE": int(os.environ.get("LABS_CONN_MAX_AGE", "60")),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }


def user_database_url(base: str, user_settings: str) -> str:
    """The lab's database for a user project's settings: same server, user and options as `base`."""
    import re

    from harness.stack.urls import with_database

    suffix = os.environ.get("LABS_DB_SUFFIX", "")  # one side of a commit pair: a database of its own
    return with_database(base, "labs_" + re.sub(r"[^a-z0-9_]", "_", user_settings.lower())[:40] + suffix)


SEED_LOCK_KEY = int.from_bytes(b"labseed", "big")


@contextlib.contextmanager
def seed_lock() -> Iterator[None]:
    """A PostgreSQL advisory lock, so two runs sharing a warm stack never seed at once (one key
    for every scenario: they share the catalog). The session ending releases it anyway."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", [SEED_LOCK_KEY])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", [SEED_LOCK_KEY])
        except Exception:
            pass
