"""The built-in scenarios, in an explicit dict (no module scanning).

Importing a scenario module has no side effects; each exposes one `SCENARIO` value.
"""
from __future__ import annotations

import importlib

from harness.errors import unknown
from harness.scenario import Scenario

BUILTIN = {
    "n_plus_one": "scenarios.n_plus_one",
    "caching": "scenarios.caching",
    "gil": "scenarios.gil",
    "gunicorn": "scenarios.gunicorn",
    "pooling": "scenarios.pooling",
    "indexes": "scenarios.indexes",
}


def names() -> list[str]:
    return list(BUILTIN)


def get(name: str) -> Scenario:
    if name not in BUILTIN:
        raise unknown("scenario", name, BUILTIN)
    module = importlib.import_module(BUILTIN[name])
    scenario = module.SCENARIO
    if not isinstance(scenario, Scenario) or scenario.name != name:
        raise TypeError(f"{BUILTIN[name]}.SCENARIO must be a Scenario named {name!r}")
    return scenario


def resolve(requested: list[str]) -> list[Scenario]:
    """Names from the command line ('all' expands) -> scenarios, validated before anything starts."""
    wanted = names() if "all" in requested else requested
    out, seen = [], set()
    for name in wanted:
        if name not in seen:
            seen.add(name)
            out.append(get(name))
    return out
