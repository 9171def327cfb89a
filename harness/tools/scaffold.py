"""`labs new scenario`: a documented, runnable scenario skeleton (variants, a metric, a check, a
lesson, a test), and the project config that makes the lab find it."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.project import registry

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Scaffold:
    files: tuple[Path, ...]
    config_written: Path | None
    """labs.toml, when there was none and one was written."""
    config_hint: str
    """What to add to an existing config (empty when nothing is needed)."""


def new_scenario(name: str, directory: Path, title: str | None = None) -> Scaffold:
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", name):
        raise UsageError(f"bad scenario name {name!r}: lowercase letters, digits and underscores, "
                         "starting with a letter")
    if name in registry.names():
        raise UsageError(f"a scenario named {name!r} exists already ({registry.origin(name)})")
    files = {directory / f"{name}.py": "scenario.py.tmpl", directory / f"{name}.md": "scenario.md.tmpl",
             directory / f"test_{name}.py": "test_scenario.py.tmpl"}
    for path in files:
        if path.exists():
            raise UsageError(f"{path} exists already: not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    for path, template in files.items():
        text = (TEMPLATES / template).read_text()
        path.write_text(text.replace("__NAME__", name).replace("__TITLE__", title or name.replace("_", " ").capitalize())
                        .replace("__DIR__", str(directory)))
    config = registry.find_config()
    written, hint = None, ""
    if config.path is None:
        written = Path("labs.toml")
        written.write_text(f'# Perf Lab project config\nscenario_paths = ["{directory.as_posix()}"]\n'
                           '# django_settings = "yourproject.settings"\n')
    elif directory.resolve() not in [p.resolve() for p in config.scenario_paths]:
        hint = f"add {directory.as_posix()!r} to scenario_paths in {config.path}"
    return Scaffold(tuple(files), written, hint)
