"""Where scenarios come from: the built-ins (an explicit dict), the directories a project names in
its config, and installed scenario packs (entry points, group `perflab.scenarios`).

Project config — the nearest `labs.toml`, or `[tool.labs]` in the nearest `pyproject.toml`,
from the current directory upwards:

    scenario_paths = ["perf/scenarios"]     # *.py files, each exposing SCENARIO; file stem = name
    django_settings = "myproj.settings"     # default for --django-settings
    pythonpath = ["."]                      # added to sys.path (so the project imports)

Discovery does not import user files; importing happens when a scenario is used, and a broken
file is reported as `file:line: what went wrong` without hiding the others. Name clashes are
reported too (the built-in, then the first path, wins).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from harness.errors import LabsError, UsageError, unknown
from harness.measure.contract import Scenario

BUILTIN = {
    "n_plus_one": "scenarios.n_plus_one",
    "caching": "scenarios.caching",
    "gil": "scenarios.gil",
    "gunicorn": "scenarios.gunicorn",
    "pooling": "scenarios.pooling",
    "indexes": "scenarios.indexes",
    "bulk_writes": "scenarios.bulk_writes",
    "locking": "scenarios.locking",
    "async_views": "scenarios.async_views",
    "pagination": "scenarios.pagination",
    "tasks": "scenarios.tasks",
    "serializers": "scenarios.serializers",
    "aggregates": "scenarios.aggregates",
    "partitioning": "scenarios.partitioning",
    "graphql": "scenarios.graphql_resolvers",
    "replicas": "scenarios.replicas",
}
ENTRY_POINT_GROUP = "perflab.scenarios"


class ScenarioLoadError(LabsError):
    """A user scenario that cannot be loaded: says which file, which line and what to fix."""

    exit_code = 2


@dataclass(frozen=True)
class Source:
    name: str
    origin: str
    """'built-in', a file path, or 'entry point <module:attr>'."""
    load: Callable[[], Scenario]


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    scenario_paths: tuple[Path, ...] = ()
    django_settings: str | None = None
    pythonpath: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Project:
    """The project a command works on: its config (labs.toml / [tool.labs], found from the
    current directory up) and the Django settings its scenarios run under (None: the lab's own
    bookstore). Every command that runs or inspects a scenario resolves it here, the same way."""

    config: Config = field(default_factory=lambda: Config())
    django_settings: str | None = None

    @classmethod
    def resolve(cls, django_settings: str | None = None) -> Project:
        """--django-settings wins over the config's `django_settings`."""
        config = registry().config
        return cls(config, django_settings or config.django_settings)

    def settings_for(self, scenario_name: str) -> str | None:
        """The settings a scenario runs under: a built-in scenario always runs on the lab's own
        project (its bookstore app), a user's scenario under the project's settings."""
        return None if is_builtin(scenario_name) else self.django_settings


@dataclass
class Registry:
    sources: dict[str, Source] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    config: Config = field(default_factory=Config)


CONFIG_KEYS = {"scenario_paths": "a list of directories of scenario files",
               "django_settings": "your settings module, a string",
               "pythonpath": "a list of directories added to sys.path"}


def _string_list(section: dict, key: str, path: Path) -> list[str]:
    value = section.get(key, [])
    if isinstance(value, str):  # "src" is one directory, not three
        raise UsageError(f"{path}: {key} must be a list, got the string {value!r}", hint=f'{key} = ["{value}"]')
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise UsageError(f"{path}: {key} must be a list of directories (strings), got {value!r}",
                         hint=f'{key} = ["."]')
    return value


def find_config(start: Path | None = None) -> Config:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in ("labs.toml", "pyproject.toml"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = tomllib.loads(path.read_text())
            except (tomllib.TOMLDecodeError, OSError) as exc:
                raise UsageError(f"{path}: not valid TOML: {exc}") from None
            section = data if name == "labs.toml" else data.get("tool", {}).get("labs")
            if section is None:
                continue
            where = path.name if name == "labs.toml" else f"{path.name} [tool.labs]"
            if not isinstance(section, dict):
                raise UsageError(f"{path}: [tool.labs] must be a table")
            unknown_keys = sorted(set(section) - set(CONFIG_KEYS))
            if unknown_keys:
                import difflib

                guesses = {k: difflib.get_close_matches(k, CONFIG_KEYS, n=1) for k in unknown_keys}
                said = ", ".join(f"{k!r}" + (f" (did you mean {g[0]!r}?)" if g else "") for k, g in guesses.items())
                raise UsageError(f"{path}: unknown key {said} in {where}",
                                 hint="the keys are " + ", ".join(f"{k} ({v})" for k, v in CONFIG_KEYS.items()))
            paths = _string_list(section, "scenario_paths", path)
            settings = section.get("django_settings")
            if settings is not None and (not isinstance(settings, str) or not settings.strip()):
                raise UsageError(f"{path}: django_settings must be a dotted module name in quotes, got {settings!r}",
                                 hint='django_settings = "myproj.settings"')
            return Config(path, tuple(folder / p for p in paths), settings,
                          tuple(folder / p for p in _string_list(section, "pythonpath", path)))
    return Config()


def _builtin(name: str, module: str) -> Source:
    def load() -> Scenario:
        return _check(importlib.import_module(module), name, module)
    return Source(name, "built-in", load)


def _from_file(name: str, path: Path) -> Source:
    def load() -> Scenario:
        module_name = f"labs_user_scenarios.{name}"
        if module_name in sys.modules:
            return _check(sys.modules[module_name], name, str(path))
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            sys.modules.pop(module_name, None)
            raise ScenarioLoadError(f"{exc.filename}:{exc.lineno}: syntax error: {exc.msg}",
                                    hint="fix the file, or remove it from scenario_paths") from None
        except Exception as exc:
            sys.modules.pop(module_name, None)
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
            line = frames[-1].lineno if frames else "?"
            raise ScenarioLoadError(f"{path}:{line}: importing it raised {type(exc).__name__}: {exc}",
                                    hint="fix the file; the other scenarios still work") from None
        return _check(module, name, str(path))
    return Source(name, str(path), load)


def _from_entry_point(ep: importlib.metadata.EntryPoint) -> Source:
    def load() -> Scenario:
        try:
            value = ep.load()
        except Exception as exc:
            raise ScenarioLoadError(f"entry point {ep.name} = {ep.value}: {type(exc).__name__}: {exc}",
                                    hint="fix or uninstall that scenario pack") from None
        if isinstance(value, Scenario):
            if value.name != ep.name:
                raise ScenarioLoadError(f"entry point {ep.name} gives a scenario named {value.name!r}")
            return value
        return _check(value, ep.name, f"entry point {ep.value}")
    return Source(ep.name, f"entry point {ep.value}", load)


def _check(module, name: str, origin: str) -> Scenario:
    scenario = getattr(module, "SCENARIO", None)
    if scenario is None:
        raise ScenarioLoadError(f"{origin}: defines no SCENARIO", hint="add SCENARIO = Scenario(...)")
    if not isinstance(scenario, Scenario):
        raise ScenarioLoadError(f"{origin}: SCENARIO is a {type(scenario).__name__}, not a harness.scenario.Scenario")
    if scenario.name != name:
        raise ScenarioLoadError(f"{origin}: SCENARIO is named {scenario.name!r} but the file is {name!r}",
                                hint="name the file after the scenario")
    return scenario


LAB_PACKAGES = ("labs", "scenarios")
"""The lab's own top-level packages. Names a user's project may use too (its Django project called
`labs`, an app called `scenarios`): the lab's are imported before the project's paths go first on
sys.path, so built-ins keep working beside them; a worker process measuring the user's scenario
sets LABS_USER_WORKER and never imports them, so there the names are the user's."""


@lru_cache(maxsize=8)
def _discover(cwd: str) -> Registry:
    import os

    reg = Registry(config=find_config(Path(cwd)))
    if not os.environ.get("LABS_USER_WORKER"):
        for name in LAB_PACKAGES:
            importlib.import_module(name)
    for p in reg.config.pythonpath:
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    for name, module in BUILTIN.items():
        reg.sources[name] = _builtin(name, module)
    for folder in reg.config.scenario_paths:
        if not folder.is_dir():
            reg.problems.append(f"{reg.config.path}: scenario path {folder} is not a directory")
            continue
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith(("_", "test_")) or path.name == "conftest.py":
                continue
            name = path.stem
            if name in reg.sources:
                reg.problems.append(f"{path}: name clash: {name!r} is already defined by "
                                    f"{reg.sources[name].origin} (rename the file)")
                continue
            reg.sources[name] = _from_file(name, path)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in reg.sources:
            reg.problems.append(f"entry point {ep.value}: name clash: {ep.name!r} is already defined by "
                                f"{reg.sources[ep.name].origin}")
            continue
        reg.sources[ep.name] = _from_entry_point(ep)
    return reg


def registry() -> Registry:
    return _discover(str(Path.cwd().resolve()))


def names() -> list[str]:
    return list(registry().sources)


def is_builtin(name: str) -> bool:
    source = registry().sources.get(name)
    return source is not None and source.origin == "built-in"


def origin(name: str) -> str:
    return registry().sources[name].origin


def get(name: str) -> Scenario:
    sources = registry().sources
    if name not in sources:
        raise unknown("scenario", name, sources)
    return sources[name].load()


def resolve(requested: list[str]) -> list[Scenario]:
    """Names from the command line ('all' expands) -> scenarios, validated before anything starts.

    With 'all', a broken user scenario is skipped (and reported) so the others still run."""
    expand = "all" in requested
    wanted = names() if expand else requested
    out, seen = [], set()
    for name in wanted:
        if name in seen:
            continue
        seen.add(name)
        try:
            out.append(get(name))
        except ScenarioLoadError as exc:
            if not expand:
                raise
            registry().problems.append(f"skipped {name}: {exc.message}")
    return out
