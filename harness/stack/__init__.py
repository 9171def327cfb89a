"""Stack providers: where the lab's PostgreSQL, Redis and friends come from.

A provider is a small explicit thing (name, `available()` -> reason or None, `open()` context
manager yielding a `StackInfo`). `embedded` (default) starts servers from pip wheels, or attaches
to a warm stack started by `labs stack up`; `external` reads URLs from the environment.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

from harness.errors import StackError, UsageError, unknown
from harness.stack import embedded

COMPONENTS = ("postgres", "redis", "memcached", "pgbouncer")

ENV_VARS = {
    "postgres": "DATABASE_URL",
    "redis": "REDIS_URL",
    "memcached": "MEMCACHED_URL",
    "pgbouncer": "PGBOUNCER_URL",
    "replica": "REPLICA_URL",
}

INSTALL_HINTS = {
    "memcached": "install memcached (apt-get install memcached / brew install memcached)",
    "pgbouncer": "install pgbouncer (apt-get install pgbouncer / brew install pgbouncer), or give the stack "
                 "one (PGBOUNCER_URL, transaction mode)",
    "pgbouncer_local": "install pgbouncer (apt-get install pgbouncer / brew install pgbouncer): session mode "
                       "and the crowd over a connection limit need a PgBouncer the lab configures itself",
    "replica": "the embedded stack starts a streaming replica itself (pg_basebackup from its PostgreSQL); "
               "with --stack external give one: REPLICA_URL=postgresql://…",
    "rabbitmq": "install rabbitmq-server (apt-get install rabbitmq-server / brew install rabbitmq): the lab "
                "starts its own broker on a free loopback port",
}


@dataclass(frozen=True)
class StackInfo:
    """Where the services of one stack are. URLs carry no passwords for the embedded stack."""

    kind: str
    urls: dict[str, str]
    versions: dict[str, str] = field(default_factory=dict)
    warm: bool = False
    """True when attached to a `labs stack up` stack that outlives this run."""
    startable: frozenset[str] = frozenset()
    """Components a scenario may start itself on this machine (e.g. a pgbouncer binary on PATH)."""

    def has(self, component: str) -> bool:
        return component in self.urls

    @property
    def components(self) -> frozenset[str]:
        return frozenset(self.urls) | self.startable

    def missing(self, required: set[str] | frozenset[str]) -> list[str]:
        return sorted(c for c in required if c not in self.urls)

    def env(self) -> dict[str, str]:
        """Environment variables that point labs.settings (and child servers) at this stack."""
        return {ENV_VARS[c]: url for c, url in self.urls.items()}

    def describe(self) -> dict:
        """For results: versions and kind, never credentials."""
        return {"kind": self.kind, "warm": self.warm, "versions": dict(self.versions),
                "components": sorted(self.urls)}


def redact(url: str) -> str:
    """A URL without its password, safe for results and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# -- providers ----------------------------------------------------------------------------------
class EmbeddedProvider:
    name = "embedded"

    def available(self) -> str | None:
        try:
            embedded.valkey_binary()
            if not embedded.pg_bindir_candidates():
                return "no PostgreSQL binaries: " + embedded.INSTALL_PG
        except StackError as exc:
            return f"{exc.message}: {exc.hint}"
        return None

    @contextlib.contextmanager
    def open(self) -> Iterator[StackInfo]:
        warm = warm_stack()
        if warm is not None:
            yield _info(warm, warm=True)
            return
        base = tempfile.mkdtemp(prefix="run-", dir=embedded.runtime_dir())
        stack = embedded.EmbeddedStack(embedded.Path(base))
        try:
            stack.start()
            yield _info(stack, warm=False)
        finally:
            stack.stop()
            shutil.rmtree(base, ignore_errors=True)


class ExternalProvider:
    name = "external"

    def available(self) -> str | None:
        if not os.environ.get("DATABASE_URL"):
            return "DATABASE_URL is not set"
        return None

    @contextlib.contextmanager
    def open(self) -> Iterator[StackInfo]:
        urls = {}
        for component, var in ENV_VARS.items():
            value = os.environ.get(var)
            if value:
                urls[component] = _validate_url(var, value)
        if "postgres" not in urls:
            raise UsageError("--stack external needs DATABASE_URL (and REDIS_URL for cache scenarios)",
                             hint="export DATABASE_URL=postgresql://user:pass@host:5432/perflab")
        ensure_database(urls["postgres"])
        yield StackInfo("external", urls, versions={}, startable=startable())


def ensure_database(url: str) -> None:
    """Create the lab's own database if it is missing, plus the contrib extensions it can.

    The lab only ever creates its own database and tables; it never touches other data.
    """
    import psycopg

    parts = urllib.parse.urlsplit(url)
    dbname = urllib.parse.unquote(parts.path.lstrip("/")) or "perflab"
    kwargs = {"host": parts.hostname, "port": parts.port or 5432, "user": urllib.parse.unquote(parts.username or ""),
              "password": urllib.parse.unquote(parts.password or "") or None, "connect_timeout": 5}
    try:
        conn = psycopg.connect(dbname=dbname, autocommit=True, **kwargs)
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise StackError(f"cannot connect to {redact(url)}: {str(exc).strip().splitlines()[-1]}",
                             hint="check DATABASE_URL and that the server accepts connections") from None
        try:
            with psycopg.connect(dbname="postgres", autocommit=True, **kwargs) as admin:
                admin.execute(f'CREATE DATABASE "{dbname}"')
        except psycopg.Error as exc2:
            raise StackError(f"database {dbname!r} does not exist and could not be created: {exc2}",
                             hint=f"create it (CREATE DATABASE {dbname}) or give a user that may") from None
        conn = psycopg.connect(dbname=dbname, autocommit=True, **kwargs)
    with conn:
        for ext in embedded.PG_EXTENSIONS:
            try:
                conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
            except psycopg.Error:
                pass  # not allowed or not installed there: scenarios that need it will say so


def _validate_url(var: str, value: str) -> str:
    schemes = {"DATABASE_URL": ("postgres", "postgresql"), "PGBOUNCER_URL": ("postgres", "postgresql"),
               "REPLICA_URL": ("postgres", "postgresql"),
               "REDIS_URL": ("redis", "rediss"), "MEMCACHED_URL": ("memcached",)}[var]
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{var} is not a valid URL: {exc}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise UsageError(f"{var} must look like {schemes[0]}://host:port/...; got {redact(value)!r}")
    del port
    return value


class DockerProvider:
    name = "docker"

    def available(self) -> str | None:
        from harness.stack import docker

        return docker.available()

    @contextlib.contextmanager
    def open(self) -> Iterator[StackInfo]:
        from harness.stack import docker

        # Containers stay up after the run (like a warm stack): `labs stack down --stack docker`.
        yield StackInfo("docker", docker.up(), versions={}, warm=True)


PROVIDERS = {p.name: p for p in (EmbeddedProvider(), ExternalProvider(), DockerProvider())}


def provider(name: str):
    try:
        return PROVIDERS[name]
    except KeyError:
        raise unknown("stack", name, PROVIDERS) from None


def startable() -> frozenset[str]:
    from harness.stack import pgbouncer, rabbitmq

    return frozenset(({"pgbouncer", "pgbouncer_local"} if pgbouncer.binary() is not None else set())
                     | ({"rabbitmq"} if rabbitmq.binary() is not None else set()))


def _info(stack: embedded.EmbeddedStack, warm: bool) -> StackInfo:
    from harness.stack import replica

    return StackInfo(
        "embedded",
        {k: s.url for k, s in stack.services.items()},
        {k: s.version for k, s in stack.services.items()},
        warm=warm,
        # a streaming replica of its own PostgreSQL, started by the scenario that wants one
        startable=startable() | ({"replica"} if replica.available() else set()),
    )


# -- the warm stack -----------------------------------------------------------------------------
def warm_stack() -> embedded.EmbeddedStack | None:
    """The `labs stack up` stack if it is healthy; a stale one (dead PIDs) is cleaned away."""
    stack = embedded.read_state()
    if stack is None:
        return None
    if all(s.healthy() for s in stack.services.values()) and "postgres" in stack.services:
        return stack
    _teardown(stack)
    return None


def stack_up() -> tuple[embedded.EmbeddedStack, bool]:
    """Start a warm stack, or return the healthy one already there. Second value: newly started."""
    current = warm_stack()
    if current is not None:
        return current, False
    base = embedded.runtime_dir() / "warm"
    shutil.rmtree(base, ignore_errors=True)
    stack = embedded.EmbeddedStack(base, detached=True)
    stack.start()
    embedded.write_state(stack)
    return stack, True


def stack_down() -> embedded.EmbeddedStack | None:
    stack = embedded.read_state()
    if stack is None:
        return None
    _teardown(stack)
    return stack


def _teardown(stack: embedded.EmbeddedStack) -> None:
    stack.stop()
    shutil.rmtree(stack.base, ignore_errors=True)
    embedded.clear_state()
