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
from harness.stack.urls import redact

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
    """Where the services of one stack are. URLs carry the servers' secrets: anything stored or
    printed goes through `redact` (`describe` holds no URL at all)."""

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
    def open(self, claim_empty: bool = False) -> Iterator[StackInfo]:
        warm = warm_stack()
        if warm is not None:
            yield _info(warm, warm=True)
            return
        embedded.reap_stale_run_dirs(embedded.runtime_dir())
        base = tempfile.mkdtemp(prefix="run-", dir=embedded.runtime_dir())
        stack = embedded.EmbeddedStack(embedded.Path(base))
        try:
            embedded.claim_run_dir(embedded.Path(base))
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
    def open(self, claim_empty: bool = False) -> Iterator[StackInfo]:
        """`claim_empty`: the user said the (empty) database DATABASE_URL names is theirs to give."""
        urls = {}
        for component, var in ENV_VARS.items():
            value = os.environ.get(var)
            if value:
                urls[component] = _validate_url(var, value)
        if "postgres" not in urls:
            raise UsageError("--stack external needs DATABASE_URL (and REDIS_URL for cache scenarios)",
                             hint="export DATABASE_URL=postgresql://user:pass@host:5432/perflab")
        ensure_database(urls["postgres"], claim_empty=claim_empty)
        yield StackInfo("external", urls, versions={}, startable=startable())


def ensure_database(url: str, claim_empty: bool = False) -> None:
    """The lab's own database (created and marked when missing; refused when it is someone else's:
    harness.stack.ownership), plus the contrib extensions it is allowed to create there."""
    import psycopg

    from harness.stack import ownership
    from harness.stack.urls import pg_connect_kwargs

    ownership.ensure_owned(url, claim_empty=claim_empty)
    with psycopg.connect(autocommit=True, **pg_connect_kwargs(url)) as conn:
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
    def open(self, claim_empty: bool = False) -> Iterator[StackInfo]:
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
    if stack.starting and stack.owner_pid != os.getpid() and procs_alive(stack.owner_pid):
        raise StackError(f"`labs stack up` (pid {stack.owner_pid}) is starting the warm stack right now",
                         hint="wait a few seconds and run again")
    if stack.services and all(s.healthy() for s in stack.services.values()) and "postgres" in stack.services \
            and "redis" in stack.services:
        return stack
    _teardown(stack)
    return None


def stack_up() -> tuple[embedded.EmbeddedStack, bool]:
    """Start a warm stack, or return the healthy one already there. Second value: newly started."""
    current = warm_stack()
    if current is not None:
        return current, False
    base = embedded.runtime_dir() / "warm"
    embedded.forget(base)  # what a `stack up` killed before it recorded anything left there
    # recorded before its first server starts and after each one: a `stack up` killed half-way
    # leaves a state that `stack status` and `stack down` find
    stack = embedded.EmbeddedStack(base, detached=True, on_started=embedded.write_state, starting=True)
    base.mkdir(parents=True, exist_ok=True)
    embedded.write_state(stack)
    try:
        stack.start()
    except BaseException:
        embedded.clear_state()
        raise
    stack.starting = False
    embedded.write_state(stack)
    return stack, True


def stack_down() -> embedded.EmbeddedStack | None:
    stack = embedded.read_state()
    if stack is None:
        return None
    _teardown(stack)
    return stack


def procs_alive(pid: int) -> bool:
    from harness.stack import procs

    return procs.pid_alive(pid)


def _teardown(stack: embedded.EmbeddedStack) -> None:
    stack.stop()
    embedded.forget(stack.base)
    embedded.clear_state()
