"""The lab session: the one object that owns what a command needs to measure on a stack.

    with LabSession(stack="embedded", project=Project.resolve(), results_dir=Path("results")) as s:
        runs = s.run(scenarios, RunOptions(...))      # verified, timed, saved (partial runs too)
        with s.prepared(scenario, "quick", {}) as prep:  # seeded, for explain / profile / checks
            ...

It opens the stack (and closes it, stopping every server, however the block ends), points Django
at it with the project's settings (once per process), records the environment once, holds the
seed lock while scenarios seed, and saves results atomically — complete runs, and partial ones
marked incomplete with the reason. Every command that needs the stack goes through it, so a
new command cannot forget the project's settings, the seed lock or the partial save.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import interrupts
from harness.errors import UsageError
from harness.measure.contract import Context, Scenario
from harness.measure.runner import ProgressEvent, RunOptions, new_run_id, run_scenario
from harness.project.registry import Project
from harness.results import store
from harness.results.model import Result
from harness.stack import StackInfo, provider


@dataclass(frozen=True)
class SavedRun:
    result: Result
    path: Path
    scenario: Scenario


@dataclass(frozen=True)
class Prepared:
    """A scenario seeded on the session's stack, ready to be inspected outside a measured run."""

    scenario: Scenario
    opts: RunOptions
    components: frozenset[str]
    artifacts: Path
    shared: Any = None


def _quiet(_event: ProgressEvent) -> None:
    pass


def _silent(_text: str) -> None:
    pass


@dataclass
class LabSession:
    """Composition root of a command that measures (see the module docstring)."""

    stack: str = "embedded"
    """Which stack provider: embedded, docker or external."""
    project: Project = field(default_factory=Project)
    """Where scenarios come from and which Django settings they run under."""
    results_dir: Path = Path("results")
    seed: int = 42
    progress: Callable[[ProgressEvent], None] = _quiet
    """Receives the runner's progress events (the CLI draws bars)."""
    notify: Callable[[str], None] = _silent
    """Receives one-line notes worth telling the user (a partial result saved...)."""
    claim_database: bool = False
    """--i-own-this-database: an empty external database may be taken over (harness.stack.ownership)."""
    info: StackInfo | None = None
    stack_s: float = 0.0
    _exit: contextlib.ExitStack | None = None
    _env: dict[str, Any] | None = None
    partials: list[Path] = field(default_factory=list)
    """Partial results saved by this session (an interrupt, a dead service)."""

    # -- lifetime -----------------------------------------------------------------------------------
    def __enter__(self) -> LabSession:
        # a read-only or full results dir is found now, not when saving after the measurement
        store.check_writable(self.results_dir)
        self._exit = contextlib.ExitStack()
        t0 = time.perf_counter()
        try:
            self.info = self._exit.enter_context(provider(self.stack).open(claim_empty=self.claim_database))
            if (self.info.warm or self.info.kind == "external") and self.info.has("postgres"):
                from harness.stack.ownership import exclusive_run

                # a shared stack: runs take turns in its lab database (their seeds would collide)
                self._exit.enter_context(exclusive_run(self.info.urls["postgres"], self.notify))
            interrupts.check()
        except BaseException:
            self._exit.close()
            raise
        self.stack_s = 0.0 if self.info.warm else time.perf_counter() - t0
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._exit is not None
        self._exit.close()

    # -- the Django environment and the facts a result records ---------------------------------------
    def django(self, settings: str | None) -> None:
        """Configure Django in this process for the stack: `settings` is a user project's settings
        module, None the lab's own project (migrates; once per process)."""
        from harness.project import djangoenv

        djangoenv.setup(self._info(), settings)

    def env(self) -> dict[str, Any]:
        """Environment metadata, collected once per session (git, versions, CPU, stack)."""
        if self._env is None:
            from harness.project import envinfo

            describe = self._info().describe()
            describe["versions"] = {**describe["versions"], **envinfo.database_versions(self._info())}
            self._env = envinfo.collect(describe)
            if self.project.django_settings:
                self._env["django_settings"] = self.project.django_settings  # a user's project, not the lab's
        return self._env

    def _info(self) -> StackInfo:
        if self.info is None:
            raise RuntimeError("the session is not open: use it as `with LabSession(...) as s`")
        return self.info

    # -- measuring ---------------------------------------------------------------------------------
    def run(self, scenarios: Sequence[Scenario], opts: RunOptions) -> list[SavedRun]:
        """Run each scenario (verified, timed, interleaved) and save its result; a run stopped by an
        interrupt, a dead service or a crash is saved marked incomplete before the error goes on.

        Each scenario runs under the settings the project gives it (a built-in on the lab's own
        project, yours on your settings) in fresh worker processes (harness.measure.workers): as
        many as `opts.processes`, else the scenario's choice for the profile, else the profile's.
        `processes=0` measures in this process instead (tests; one settings module per process)."""
        from harness.measure.runner import BUDGETS
        from harness.measure.workers import run_in_processes
        from harness.project import registry

        env = self.env()
        out = []
        for sc in scenarios:
            sc_opts = self.scenario_opts(sc, opts)
            settings = None if registry.is_builtin(sc.name) else opts.django_settings
            budget = opts.budget or BUDGETS[opts.profile]
            processes = opts.processes if opts.processes is not None else \
                (sc.processes or {}).get(opts.profile, budget.processes)
            if processes == 0:
                self.django(settings)
                result = run_scenario(sc, sc_opts, self._info(), progress=self.progress, env=env,
                                      on_partial=self._save_partial)
            else:
                run_id = new_run_id(sc.name)
                result = run_in_processes(sc, sc_opts, self._info(), processes=processes, settings=settings,
                                          run_id=run_id, env=env, progress=self.progress,
                                          on_partial=self._save_partial)
            result = replace(result, timings={"stack_s": self.stack_s, **result.timings})
            out.append(SavedRun(result, store.save(result, self.results_dir), sc))
        return out

    def scenario_opts(self, sc: Scenario, opts: RunOptions) -> RunOptions:
        """A run's options narrowed to one scenario: its parameters and variants, this session's place."""
        return replace(opts, params={k: v for k, v in opts.params.items() if k in sc.profile_params(opts.profile)},
                       variants=tuple(v for v in opts.variants if v in sc.variant_names(opts.profile)),
                       results_dir=str(self.results_dir), stack=self.stack)

    def _save_partial(self, result: Result) -> None:
        path = store.save(replace(result, timings={"stack_s": self.stack_s, **result.timings}), self.results_dir)
        self.partials.append(path)
        self.notify(f"partial result saved (complete: false) to {path}")

    def interrupted_note(self) -> str:
        """What an interrupted command kept, as it was (not as it might have been)."""
        stopped = "every service this run started was stopped"
        if self.partials:
            return f"{stopped}; the partial result is saved marked incomplete ({self.partials[-1]})."
        return f"{stopped}; nothing had been measured yet, so no result was saved."

    @contextlib.contextmanager
    def prepared(self, scenario: Scenario, profile: str, params: Mapping[str, Any]) -> Iterator[Prepared]:
        """The scenario seeded on this stack (under the seed lock), its setup's value alive until
        the block ends: for looking at variants outside a measured run (explain, profile). It runs
        under the settings the project gives that scenario."""
        from harness.project.djangoenv import seed_lock

        settings = self.project.settings_for(scenario.name)
        self.django(settings)
        opts = RunOptions((scenario.name,), profile, (), self.stack, str(self.results_dir), self.seed,
                          dict(params), django_settings=settings)
        values = scenario.params_for(profile, params)
        artifacts = self.results_dir / new_run_id(f"{scenario.name}-diagnose")
        ctx = Context(values, self.seed, profile, self._info().components, artifacts=artifacts)
        try:
            shared = None
            if scenario.setup is not None:
                with seed_lock():
                    shared = scenario.setup(ctx)
            yield Prepared(scenario, opts, self._info().components, artifacts, shared)
        finally:
            try:
                ctx.close()
            finally:
                if scenario.teardown is not None:
                    scenario.teardown()


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """NAME=VALUE flags -> a dict (values stay text; scenarios coerce them)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"bad --param {item!r}: expected NAME=VALUE, e.g. --param books=10,100")
        params[key.strip()] = value.strip()
    return params


def plan_run(names: Sequence[str], *, profile: str, variants: str | None, params: Sequence[str],
             project: Project, seed: int = 42, results_dir: Path = Path("results"), stack: str = "embedded",
             processes: int | None = None, gc: bool = True,
             case_timeout_s: float | None = None) -> tuple[list[Scenario], RunOptions]:
    """Validate a run request before any server starts: scenario names ('all' expands), profile,
    variants, NAME=VALUE parameters — each mistake a UsageError naming the choices."""
    from harness.errors import unknown
    from harness.measure.contract import PROFILES
    from harness.project import registry

    if profile not in PROFILES:
        raise unknown("profile", profile, PROFILES)
    chosen = registry.resolve(list(names))
    wanted = tuple(v.strip() for v in (variants or "").split(",") if v.strip())
    if variants is not None and not wanted:
        known = sorted({v for sc in chosen for v in sc.variant_names(profile)})
        raise UsageError(f"--variants {variants!r} names no variant (choose from: {', '.join(known)})",
                         hint="e.g. --variants " + ",".join(known[:2]))
    overrides = parse_params(params)
    for sc in chosen:
        sc.params_for(profile, {k: v for k, v in overrides.items() if k in sc.profile_params(profile)})
    unknown_params = [k for k in overrides if not any(k in sc.profile_params(profile) for sc in chosen)]
    if unknown_params:
        takes = "; ".join(f"{sc.name}: {', '.join(sorted(sc.profile_params(profile)))}" for sc in chosen)
        raise UsageError(f"no scenario here has parameter {unknown_params[0]!r} (parameters — {takes})")
    if wanted:
        known = {v for sc in chosen for v in sc.variant_names(profile)}
        for name in wanted:
            if name not in known:
                raise unknown("variant", name, known)
    opts = RunOptions(tuple(sc.name for sc in chosen), profile, wanted, stack, str(results_dir), seed, overrides,
                      django_settings=project.django_settings, processes=processes, gc=gc)
    if case_timeout_s is not None:
        opts = replace(opts, case_timeout_s=case_timeout_s)
    return chosen, opts
