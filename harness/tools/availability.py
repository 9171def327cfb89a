"""What `labs list` shows: each scenario, what it needs, and whether this stack can run it."""
from __future__ import annotations

import os
from dataclasses import dataclass

from harness.project import registry


@dataclass(frozen=True)
class Row:
    name: str
    origin: str
    title: str = ""
    needs: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    unavailable: str = ""
    """Why this stack cannot run it ('' when it can)."""
    without: tuple[str, ...] = ()
    """Optional components missing here (some variants will be skipped)."""
    broken: str = ""
    """Why the scenario cannot be loaded ('' when it loads)."""


def components(stack: str) -> set[str]:
    """What a stack of this kind offers on this machine, without starting it."""
    from harness.stack import embedded, replica, startable

    if stack == "embedded":
        have = {"postgres", "redis", *startable()}
        if embedded.memcached_binary() is not None:
            have.add("memcached")
        if replica.available():
            have.add("replica")
        return have
    env = (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL"), ("memcached", "MEMCACHED_URL"),
           ("pgbouncer", "PGBOUNCER_URL"), ("replica", "REPLICA_URL"))
    return {c for c, var in env if os.environ.get(var)}


def scenarios(stack: str) -> tuple[list[Row], list[str]]:
    from harness.stack import provider

    prov = provider(stack)
    reason = prov.available()
    have = components(stack)
    rows = []
    for name in registry.names():
        origin = registry.origin(name)
        shown = origin if origin == "built-in" or not os.path.exists(origin) else os.path.relpath(origin)
        try:
            sc = registry.get(name)
        except registry.ScenarioLoadError as exc:
            rows.append(Row(name, shown, broken=exc.message))
            continue
        missing = sorted(sc.requires - have)
        unavailable = reason or (f"needs {', '.join(missing)}" if missing else "")
        rows.append(Row(name, shown, sc.title, tuple(sorted(sc.requires)), tuple(sorted(sc.optional)), unavailable,
                        tuple(sorted(sc.optional - have))))
    return rows, list(registry.registry().problems)
