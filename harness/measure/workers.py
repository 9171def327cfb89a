"""Repeats in fresh processes: a run spreads its interleaved rounds over N worker processes.

Why: a run's intervals describe one process; the variance that matters between runs lives
between processes — hash seed, memory layout, the machine's noise phases of tens of seconds.
pyperf spawns 20 workers for the same reason. Here each worker is `python -m
harness.measure.workers`, fed one JSON spec on stdin; it points Django at the shared stack with
the settings the project gives the scenario (so built-in and user scenarios run side by side,
each in its own process), runs the scenario's setup (seeding is idempotent, under the seed lock)
and its share of the rounds, and streams back JSON lines: progress events, one case result per
finished case, then `done` (or an error with its kind). Process 0 alone runs the counters pass
and the checks, and calibrates loops; the others reuse its loops, so every process times the
same thing.

The parent (`run_in_processes`) merges: samples of every process (grouped), counters, checks and
metrics of process 0, and the per-process estimates from which the between-process interval
(harness.measure.stats.between_process_interval) is computed. Workers die with the parent
(parent-death signal) and are stopped however the run ends.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from typing import Any

from harness import interrupts
from harness.errors import LabsError, StackError, UsageError
from harness.measure.contract import Scenario
from harness.measure.deadline import exit_despite_leaked_threads
from harness.measure.runner import Budget, ProgressEvent, RunOptions, finish_result
from harness.measure.summary import merge_processes
from harness.results.model import CaseResult, Result
from harness.stack import StackInfo

MARK = "@@labs-worker "
"""Prefix of the worker's messages: any other stdout line (a library printing) is passed on."""

ERRORS = {"LabsError": LabsError, "StackError": StackError, "UsageError": UsageError}


def share(budget: Budget, processes: int) -> Budget:
    """One process's part of a run's budget: the rounds and time split evenly (at least 5 rounds
    each, so every process has a median of its own)."""
    if processes <= 1:
        return budget
    return replace(budget, min_rounds=max(5, -(-budget.min_rounds // processes)),
                   max_rounds=max(5, budget.max_rounds // processes), case_s=budget.case_s / processes,
                   processes=1)


def run_in_processes(
    scenario: Scenario, opts: RunOptions, stack: StackInfo, *, processes: int, settings: str | None,
    run_id: str, env: Mapping[str, Any], progress: Callable[[ProgressEvent], None],
    on_partial: Callable[[Result], None] | None = None,
) -> Result:
    """Run `scenario` in `processes` fresh worker processes, one after another; merge their cases."""
    from harness.measure.runner import BUDGETS

    budget = opts.budget or BUDGETS[opts.profile]
    per_process = share(budget, processes)
    started = time.time()
    per_case: dict[str, list[CaseResult]] = {}
    loops: dict[str, dict[str, int]] = {}
    timings: dict[str, float] = {"seed_s": 0.0, "measure_s": 0.0, "workers_s": 0.0}
    head: dict[str, Any] = {}
    gaps: list[str] = []

    def merged(complete: bool, reason: str | None = None) -> Result:
        cases = [merge_processes(runs) for runs in per_case.values()]
        return finish_result(scenario, opts, run_id, started, cases, env, timings, complete, reason,
                             processes=processes, **head)

    try:
        for index in range(processes):
            spec = {"scenario": scenario.name, "settings": settings, "index": index, "processes": processes,
                    "run_id": run_id, "opts": _opts_dict(replace(opts, budget=per_process, processes=processes)),
                    "stack": _stack_dict(stack), "loops": loops or None, "env": dict(env)}
            t0 = time.perf_counter()
            for kind, payload in _worker(spec, progress):
                if kind == "case":
                    case = _case(payload)
                    per_case.setdefault(case.name, []).append(case)
                    if index == 0:
                        loops[case.name] = {n: v.loops for n, v in case.variants.items() if not v.skipped}
                elif kind == "done":
                    if payload.get("incomplete"):  # a case timed out in this process
                        gaps.append(f"process {index + 1}: {payload['incomplete']}")
                    if index == 0:
                        head.update(payload.get("head", {}))
                    for key in ("seed_s", "measure_s"):
                        timings[key] += payload.get("timings", {}).get(key, 0.0)
            timings["workers_s"] += time.perf_counter() - t0
    except KeyboardInterrupt:
        if on_partial:
            on_partial(merged(False, "interrupted"))
        raise
    except LabsError as exc:
        if on_partial and not isinstance(exc, UsageError):
            on_partial(merged(False, exc.message))
        raise
    return merged(not gaps, "; ".join(gaps) or None)


def spawn(spec: dict, hash_seed: str = "random") -> subprocess.Popen:
    """A worker process told its spec; its stdin stays open (a lockstep worker reads its turns there)."""
    argv = [sys.executable, "-m", "harness.measure.workers"]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    if spec["settings"]:  # a user's scenario: its project's names (even `labs`, `scenarios`) are its own
        env["LABS_USER_WORKER"] = "1"
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True,
                            bufsize=1, env=env, preexec_fn=_die_with_parent)
    proc.stdin.write(json.dumps(spec) + "\n")
    proc.stdin.flush()
    return proc


def _worker(spec: dict, progress: Callable[[ProgressEvent], None], hash_seed: str = "random"):
    """Start one worker, send it the spec, yield (kind, payload) messages until it is done.
    `hash_seed`: "random" (each process its own: part of what varies), or the one both processes
    of a commit pair share (harness.measure.commits)."""
    proc = spawn(spec, hash_seed)
    try:
        proc.stdin.close()
        done = False
        for line in proc.stdout:
            if not line.startswith(MARK):
                sys.stderr.write(line)  # a library printing to stdout in the worker
                continue
            message = json.loads(line[len(MARK):])
            kind = message["kind"]
            if kind == "progress":
                progress(ProgressEvent(**message["event"]))
            elif kind == "error":
                raise _error(message)
            else:
                if kind == "done":
                    done = True
                yield kind, message.get("payload", {})
        code = proc.wait()
        if not done:
            if interrupts.requested():
                raise KeyboardInterrupt
            raise LabsError(f"worker process {spec['index'] + 1}/{spec['processes']} of {spec['scenario']} ended "
                            f"without finishing (exit {code})", hint="its error is printed above")
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None and not stream.closed:
            stream.close()


def _die_with_parent() -> None:
    from harness.stack.procs import set_death_signal

    set_death_signal(signal.SIGTERM)


def _error(message: dict) -> BaseException:
    if message.get("class") == "KeyboardInterrupt":
        return KeyboardInterrupt()
    cls = ERRORS.get(message.get("class"), LabsError)
    exc = cls(message.get("message", "the worker failed"), hint=message.get("hint"))
    exc.exit_code = message.get("exit_code", cls.exit_code)
    return exc


def _opts_dict(opts: RunOptions) -> dict:
    data = asdict(opts)
    data["scenarios"] = list(opts.scenarios)
    data["variants"] = list(opts.variants)
    return data


def _opts(data: dict) -> RunOptions:
    budget = Budget(**data["budget"]) if data.get("budget") else None
    return RunOptions(**{**data, "scenarios": tuple(data["scenarios"]), "variants": tuple(data["variants"]),
                         "budget": budget})


def _stack_dict(stack: StackInfo) -> dict:
    return {"kind": stack.kind, "urls": dict(stack.urls), "versions": dict(stack.versions), "warm": stack.warm,
            "startable": sorted(stack.startable)}


def _case(payload: dict) -> CaseResult:
    from harness.results.store import case_from_dict

    return case_from_dict(payload)


# -- the worker ------------------------------------------------------------------------------------
def _send(kind: str, **fields: Any) -> None:
    try:
        sys.stdout.write(MARK + json.dumps({"kind": kind, **fields}, default=_default) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        # the parent is gone (killed): nobody to tell, nothing to print — end quietly, no traceback
        os._exit(1)


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def main() -> None:
    from harness.__main__ import drop_cwd_from_path

    interrupts.install()
    drop_cwd_from_path()
    try:
        spec = json.loads(sys.stdin.readline())
        _serve(spec)
        exit_despite_leaked_threads(0, lambda text: print(f"warning: {text}", file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        _report({"class": "KeyboardInterrupt"}, 130)
    except LabsError as exc:
        _report({"class": type(exc).__name__ if type(exc).__name__ in ERRORS else "LabsError",
                 "message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}, 1)
    except Exception as exc:  # a bug or a scenario that crashed: said, with where to look
        import traceback

        try:
            traceback.print_exc()
        except KeyboardInterrupt:
            pass
        _report({"class": "LabsError", "message": f"crashed: {exc!r}", "hint": "the traceback is printed above"}, 1)


def _report(fields: dict, code: int) -> None:
    """Tell the parent how this process ended, then end it. An interrupt arriving meanwhile (the
    parent stopping its workers after the same failure) ends it quietly: never a second traceback."""
    try:
        _send("error", **fields)
    except KeyboardInterrupt:
        code = 130
    if code == 130:
        interrupts.finish(130)
    sys.exit(code)


def _serve(spec: dict) -> None:
    from harness.measure.runner import run_scenario
    from harness.project import djangoenv, registry
    from harness.results.store import case_to_dict

    stack = StackInfo(spec["stack"]["kind"], spec["stack"]["urls"], spec["stack"]["versions"],
                      spec["stack"]["warm"], frozenset(spec["stack"]["startable"]))
    if spec.get("root"):  # one side of a commit pair: that tree's project, scenarios and settings
        os.chdir(spec["root"])
        if not spec["settings"]:
            sys.path.insert(0, spec["root"])  # the lab's own `labs` and `scenarios` of that tree
    if spec.get("db_suffix"):  # …in a database of its own (its schema may differ from the other side's)
        os.environ["LABS_DB_SUFFIX"] = spec["db_suffix"]
    if spec.get("lockstep"):
        from harness.measure import rounds

        def gate() -> bool:
            _send("gate")
            line = sys.stdin.readline()
            if not line:  # the parent is gone
                os._exit(1)
            return line.strip() == "go"
        rounds.ROUND_GATE = gate
    reg = registry.registry()  # the project's paths go on sys.path (after the lab's packages, unless a user worker)
    if spec["settings"] and not reg.config.pythonpath:
        root = str(reg.config.path.parent if reg.config.path else os.getcwd())
        if root not in sys.path:
            sys.path.insert(0, root)  # the project's own modules (its settings) import from its root
    djangoenv.setup(stack, spec["settings"], migrate=spec["index"] == 0)
    scenario = registry.get(spec["scenario"])
    opts = _opts(spec["opts"])

    def progress(ev: ProgressEvent) -> None:
        _send("progress", event=asdict(replace(ev, process=spec["index"], processes=spec["processes"])))

    result = run_scenario(scenario, opts, stack, progress=progress, env=spec["env"], run_id=spec["run_id"],
                          process=spec["index"], loops=spec["loops"],
                          on_case=lambda case: _send("case", payload=case_to_dict(case)), summarize=False)
    _send("done", payload={"timings": result.timings, "incomplete": None if result.complete else result.reason,
                           "head": {"params": result.params, "metrics": result.metrics}})


if __name__ == "__main__":
    main()
