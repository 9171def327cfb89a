"""Perf Lab's engine: the code behind the `labs` command.

The folders read as the flow of one run. `cli` + `commands/` parse the command line and render;
`session` opens a `stack/` (embedded servers, docker or external URLs), resolves the `project/`
(scenario registry, labs.toml, Django settings, environment facts) and hands the scenarios to
`measure/` (the scenario contract, the runner and its worker processes, counters, statistics,
load generation); what it measured becomes a `results/` document (model, store, compare,
history), which `present/` renders (terminal tables, HTML, charts, asv). `tools/` holds the
commands that are not a measured run (doctor, explain/profile, serve, scaffolding) and
`workshop/` the exercises. Scenario authors import only `harness.scenario`.
"""
import sys

__version__ = "0.2.0"
"""The package's version, in one place (pyproject.toml reads it)."""

# Standard library only, and as little of it as possible: `python -m harness` imports this package
# before its entry point installs the interrupt handlers (see harness/__main__.py).

MOVED = {
    "harness.registry": "harness.project.registry",
    "harness.djangoenv": "harness.project.djangoenv",
    "harness.user_settings": "harness.project.user_settings",
    "harness.envinfo": "harness.project.envinfo",
    "harness.runner": "harness.measure.runner",
    "harness.counters": "harness.measure.counters",
    "harness.stats": "harness.measure.stats",
    "harness.loadgen": "harness.measure.loadgen",
    "harness.http": "harness.measure.http",
    "harness.upstream": "harness.measure.upstream",
    "harness.model": "harness.results.model",
    "harness.store": "harness.results.store",
    "harness.compare": "harness.results.compare",
    "harness.history": "harness.results.history",
    "harness.report": "harness.present.terminal",
    "harness.htmlreport": "harness.present.html",
    "harness.charts": "harness.present.charts",
    "harness.asvsite": "harness.present.asvsite",
    "harness.diagnose": "harness.tools.diagnose",
}
"""Module names of the flat layout (before 0.2) -> where they live now. Old imports keep working
with a deprecation warning, so scenarios written against the old layout still load."""


class _Moved:
    """A meta path finder/loader that answers an old module name with the module at its new place."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(fullname, _Moved)

    @staticmethod
    def create_module(spec):
        import importlib
        import warnings

        from harness.errors import LabsDeprecationWarning

        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there (scenario authors: harness.scenario)",
                      LabsDeprecationWarning, stacklevel=6)
        return importlib.import_module(new)

    @staticmethod
    def exec_module(module):
        sys.modules[module.__spec__.name] = module


if _Moved not in sys.meta_path and not any(getattr(f, "__name__", "") == "_Moved" for f in sys.meta_path):
    sys.meta_path.append(_Moved)
