"""Measure two commits in one job, interleaved: `labs ci --against REF`.

The base commit is checked out in a git worktree (removed however the job ends; one a killed job
left behind is removed by the next). Worker processes of both sides run on the session's one
stack, each side in a database of its own that it migrates and seeds from its own code. The engine
is the installed one; the project's code, settings and scenarios come from each side's tree.

Processes come in pairs (base, candidate): both with the same hash seed, the same calibrated loop
counts (the first process calibrates, every later one reuses them) and the same round order; the
side that goes first alternates (AB, BA, AB…), so a drift of the machine within a job hits both
sides alike. harness.results.paired turns the pairs into verdicts.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import LabsError, UsageError
from harness.measure.runner import BUDGETS, ProgressEvent, RunOptions, finish_result
from harness.measure.summary import merge_processes
from harness.results.model import CaseResult, Result

SIDES = ("base", "candidate")
STAGE_PAIRS = (6, 6)
"""Pairs in stage 1, and added in stage 2 when a row is suspect (harness.results.paired)."""
WORKTREE_PREFIX = "labs-against-"


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise UsageError(f"git {' '.join(args)} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}",
                         hint="run from inside the project's git repository; REF is a commit, branch or tag")
    return done.stdout.strip()


def repo_root(start: Path | None = None) -> Path:
    return Path(_git("rev-parse", "--show-toplevel", cwd=start or Path.cwd()))


def head_commit(root: Path) -> str:
    return _git("rev-parse", "HEAD", cwd=root)


def reap_stale_worktrees(root: Path, prefixes: tuple[str, ...] = (WORKTREE_PREFIX, "labs-backfill-")) -> None:
    """Worktrees a killed `labs ci --against` or `labs asv backfill` left registered (their owner
    process gone: `<dir>.pid` beside the temporary directory names it) are removed."""
    listing = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=root, capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        if not line.startswith("worktree "):
            continue
        path = Path(line.split(" ", 1)[1])
        holder = next((d for d in (path, path.parent) if d.name.startswith(prefixes)), None)
        if holder is None:
            continue
        owner = holder.parent / f"{holder.name}.pid"
        try:
            pid = int(owner.read_text())
            os.kill(pid, 0)
            continue  # a live job's
        except (OSError, ValueError):
            pass
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=root, capture_output=True)
        shutil.rmtree(holder, ignore_errors=True)
        owner.unlink(missing_ok=True)
    subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True)


@contextlib.contextmanager
def worktree(ref: str, root: Path) -> Iterator[tuple[Path, str]]:
    """(path, sha) of `ref` checked out beside the repository; removed when the block ends."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=root)
    reap_stale_worktrees(root)
    parent = Path(tempfile.gettempdir())
    path = Path(tempfile.mkdtemp(prefix=WORKTREE_PREFIX, dir=parent))
    (parent / f"{path.name}.pid").write_text(str(os.getpid()))
    path.rmdir()
    try:
        _git("worktree", "add", "--detach", "--quiet", str(path), sha, cwd=root)
        yield path, sha
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=root, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True)
        (parent / f"{path.name}.pid").unlink(missing_ok=True)


@dataclass
class Side:
    name: str
    root: Path | None
    """The tree the side's workers run in (None: the current one)."""
    sha: str
    db_suffix: str
    processes: list[dict[str, CaseResult]] = field(default_factory=list)
    """Per process, in pair order: case name -> that process's case."""
    head: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=lambda: {"seed_s": 0.0, "measure_s": 0.0, "workers_s": 0.0})
    gaps: list[str] = field(default_factory=list)


@dataclass
class PairedRun:
    scenario: str
    base: Side
    candidate: Side
    order: list[str] = field(default_factory=list)
    """Each pair's design: "AB" / "BA" (process after process, which side first), "LS" (lockstep)."""
    lockstep: list[int] = field(default_factory=list)
    """Indexes of the lockstep pairs."""
    loops: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return min(len(self.base.processes), len(self.candidate.processes))


def _per_process(opts: RunOptions):
    """One process's share of the profile's budget (as if the stage's pairs were its processes)."""
    from harness.measure.workers import share

    return share(opts.budget or BUDGETS[opts.profile], max(2, STAGE_PAIRS[0]))


def _spec(run: PairedRun, side: Side, index: int, processes: int, scenario_name: str, settings: str | None,
          opts: RunOptions, stack_dict: dict, env: dict, run_id: str, lockstep: bool = False) -> dict:
    """What one side's worker of pair `index` is told (harness.measure.workers._serve)."""
    from harness.measure.workers import _opts_dict

    return {"scenario": scenario_name, "settings": settings, "index": index, "processes": processes,
            "run_id": f"{run_id}-{side.name}", "loops": run.loops or None, "env": dict(env),
            "opts": _opts_dict(replace(opts, budget=_per_process(opts), processes=1)), "stack": stack_dict,
            "root": str(side.root) if side.root else None, "db_suffix": side.db_suffix, "lockstep": lockstep}


def run_pairs(run: PairedRun, scenario_name: str, settings: str | None, opts: RunOptions, stack_dict: dict,
              env: dict, pairs: int, progress: Callable[[ProgressEvent], None], run_id: str) -> None:
    """Add `pairs` pairs of processes to `run` (a second stage continues where the first ended)."""
    from harness.measure.workers import _case, _worker

    start = run.pairs
    for j in range(start, start + pairs):
        order = (run.base, run.candidate) if j % 2 == 0 else (run.candidate, run.base)
        run.order.append("AB" if j % 2 == 0 else "BA")
        for side in order:
            spec = _spec(run, side, j, start + pairs, scenario_name, settings, opts, stack_dict, env, run_id)
            cases: dict[str, CaseResult] = {}
            t0 = time.perf_counter()
            try:
                for kind, payload in _worker(spec, progress, hash_seed=str(1 + j)):
                    if kind == "case":
                        case = _case(payload)
                        cases[case.name] = case
                        if not run.loops.get(case.name):
                            run.loops[case.name] = {n: v.loops for n, v in case.variants.items() if not v.skipped}
                    elif kind == "done":
                        if payload.get("incomplete"):
                            side.gaps.append(f"pair {j + 1}: {payload['incomplete']}")
                        if j == 0:
                            side.head.update(payload.get("head", {}))
                        for key in ("seed_s", "measure_s"):
                            side.timings[key] += payload.get("timings", {}).get(key, 0.0)
            except LabsError as exc:
                if side.name == "base" and j == 0:
                    raise BaseUnavailable(exc.message) from None
                raise
            side.timings["workers_s"] += time.perf_counter() - t0
            side.processes.append(cases)


class BaseUnavailable(LabsError):
    """The base commit's scenario could not run (it does not exist there, or does not load)."""


def side_result(run: PairedRun, side: Side, scenario, opts: RunOptions, run_id: str, started: float,
                env: dict) -> Result:
    """One side's processes merged as a normal result (stored; charts and history read it)."""
    names = [n for n in side.processes[0]] if side.processes else []
    cases = [merge_processes([p[n] for p in side.processes if n in p]) for n in names]
    env = {**env, "git_sha": side.sha, "paired": {"side": side.name, "pairs": run.pairs, "order": " ".join(run.order),
                                                    "base": run.base.sha, "candidate": run.candidate.sha}}
    return finish_result(scenario, opts, f"{run_id}-{side.name}", started, cases, env, side.timings,
                         not side.gaps, "; ".join(side.gaps) or None, processes=len(side.processes), **side.head)


def rows_of(run: PairedRun) -> Sequence[tuple[str, str, str]]:
    """(case, variant, metric) of every timing row both sides measured."""
    if not run.base.processes or not run.candidate.processes:
        return []
    out = []
    base0, cand0 = run.base.processes[0], run.candidate.processes[0]
    for name, case in cand0.items():
        prev = base0.get(name)
        if prev is None or prev.params != case.params:
            continue
        for variant, v in case.variants.items():
            if v.skipped or variant not in prev.variants or prev.variants[variant].skipped:
                continue
            out.append((name, variant, "time"))
            if variant != case.baseline and prev.baseline == case.baseline:
                out.append((name, variant, "ratio"))
    return out


# -- lockstep pairs: the two sides take turns round by round -------------------------------------------------
def can_lockstep(scenario) -> bool:
    """Round-timed cases only: a self-timed case (a load burst, a crash round) runs its own clock
    and cannot take turns; such a scenario is paired process after process instead."""
    from harness.measure.contract import SelfTimed

    try:
        cases = scenario.cases(scenario.params_for("quick"))
    except Exception:  # noqa: BLE001 - cannot tell: the safe design
        return False
    return all(not isinstance(c.timing, SelfTimed) for c in cases)


def run_lockstep_pairs(run: PairedRun, scenario_name: str, settings: str | None, opts: RunOptions,
                       stack_dict: dict, env: dict, pairs: int, progress: Callable[[ProgressEvent], None],
                       run_id: str) -> None:
    """Add `pairs` lockstep pairs: both processes of a pair alive at once, every timed round run
    by one and then the other (which goes first alternating round by round), so the machine's
    state — which on a shared VM flips within seconds — is the same for both sides of each
    round. Needs the loops calibrated by an earlier (process-after-process) pair."""
    import queue
    import threading

    from harness.measure.workers import MARK, _case, _error, _stop, spawn

    per_process = _per_process(opts)
    start = run.pairs
    for j in range(start, start + pairs):
        sides = {"base": run.base, "candidate": run.candidate}
        procs: dict[str, subprocess.Popen] = {}
        inbox: queue.Queue = queue.Queue()

        def read(name: str, proc: subprocess.Popen) -> None:
            for line in proc.stdout:
                if line.startswith(MARK):
                    inbox.put((name, json.loads(line[len(MARK):])))
                else:
                    import sys

                    sys.stderr.write(line)
            inbox.put((name, {"kind": "eof", "code": proc.wait()}))

        cases: dict[str, dict[str, CaseResult]] = {"base": {}, "candidate": {}}
        at_gate: dict[str, bool] = {"base": False, "candidate": False}
        finished: dict[str, bool] = {"base": False, "candidate": False}
        t0 = time.perf_counter()
        try:
            for name, side in sides.items():
                spec = _spec(run, side, j, start + pairs, scenario_name, settings, opts, stack_dict, env, run_id,
                             lockstep=True)
                procs[name] = spawn(spec, str(1 + j))
                threading.Thread(target=read, args=(name, procs[name]), daemon=True).start()
            rounds, case_t0 = 0, None
            pending: list[str] = []  # whose turn it is within the current round

            def go(name: str, word: str = "go") -> None:
                at_gate[name] = False
                procs[name].stdin.write(word + "\n")
                procs[name].stdin.flush()

            while not all(finished.values()):
                try:
                    name, message = inbox.get(timeout=opts.case_timeout_s or None)
                except queue.Empty:
                    raise LabsError(f"pair {j + 1} of {scenario_name} made no progress for {opts.case_timeout_s:g} s",
                                    hint="a variant that never returns? see --case-timeout") from None
                kind = message["kind"]
                if kind == "progress":
                    progress(ProgressEvent(**message["event"]))
                elif kind == "case":
                    case = _case(message["payload"])
                    cases[name][case.name] = case
                elif kind == "done":
                    payload = message.get("payload", {})
                    if payload.get("incomplete"):
                        sides[name].gaps.append(f"pair {j + 1}: {payload['incomplete']}")
                    for key in ("seed_s", "measure_s"):
                        sides[name].timings[key] += payload.get("timings", {}).get(key, 0.0)
                    finished[name] = True
                elif kind == "error":
                    raise _error(message)
                elif kind == "eof":
                    if not finished[name]:
                        raise LabsError(f"the {name} worker of pair {j + 1} ended without finishing "
                                        f"(exit {message['code']})", hint="its error is printed above")
                elif kind == "gate":
                    at_gate[name] = True
                # a turn: when the one whose turn it was is back at its gate, the next goes
                if pending and at_gate.get(pending[0]):
                    pending.pop(0)
                    if pending:
                        go(pending[0])
                        continue
                live = [n for n in sides if not finished[n]]
                if pending or not live or not all(at_gate[n] for n in live):
                    continue
                # every live process waits at its gate: a new round, or the case's end
                case_t0 = case_t0 or time.perf_counter()
                elapsed = time.perf_counter() - case_t0
                if rounds >= per_process.max_rounds or (rounds >= per_process.min_rounds and
                                                        elapsed >= 2 * per_process.case_s):
                    for n in live:
                        go(n, "stop")
                    rounds, case_t0 = 0, None
                    continue
                order = live if rounds % 2 == 0 else list(reversed(live))
                rounds += 1
                pending = [order[0]] + ([order[1]] if len(order) > 1 else [])
                go(pending[0])
        finally:
            for proc in procs.values():
                _stop(proc)
        elapsed = time.perf_counter() - t0
        for name, side in sides.items():
            side.timings["workers_s"] += elapsed / 2
            side.processes.append(cases[name])
        run.order.append("LS")
        run.lockstep.append(j)


def pair_diffs(run: PairedRun, case: str, variant: str, metric: str) -> tuple[list[float], list[str]]:
    """One row's per-pair log(candidate / base), and each pair's design ("AB"/"BA" process after
    process, "LS" lockstep). A lockstep pair's value is the median over its rounds of the
    round-by-round log ratio; a process-after-process pair's, the log ratio of the two medians.
    When lockstep pairs exist, only they are used (pair 0 then counted and calibrated)."""
    import math
    import statistics

    def variant_of(proc, name):
        c = proc.get(case)
        v = c.variants.get(name) if c else None
        return (c, v) if v is not None and not v.skipped else (c, None)

    out, orders = [], []
    use = [i for i in range(run.pairs) if i in run.lockstep] or list(range(run.pairs))
    for i in use:
        (cb, b), (cc, c) = variant_of(run.base.processes[i], variant), variant_of(run.candidate.processes[i], variant)
        if b is None or c is None:
            continue
        if i in run.lockstep:
            if metric == "time":
                rs = [math.log(y / x) for x, y in zip(b.samples_s, c.samples_s) if x > 0 and y > 0]
            else:
                _, bb = variant_of(run.base.processes[i], cb.baseline)
                _, cbb = variant_of(run.candidate.processes[i], cc.baseline)
                if bb is None or cbb is None:
                    continue
                rs = [math.log((y / ybase) / (x / xbase)) for x, xbase, y, ybase
                      in zip(b.samples_s, bb.samples_s, c.samples_s, cbb.samples_s) if min(x, xbase, y, ybase) > 0]
            if rs:
                out.append(statistics.median(rs))
                orders.append("")
        else:
            x, y = (b.median_s, c.median_s) if metric == "time" else (b.ratio, c.ratio)
            if x and y and x > 0 and y > 0:
                out.append(math.log(y / x))
                orders.append(run.order[i] if i < len(run.order) else "")
    return out, orders
