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
    """Which side went first in each pair ("AB" / "BA"): recorded with the result."""
    loops: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return min(len(self.base.processes), len(self.candidate.processes))


def run_pairs(run: PairedRun, scenario_name: str, settings: str | None, opts: RunOptions, stack_dict: dict,
              env: dict, pairs: int, progress: Callable[[ProgressEvent], None], run_id: str) -> None:
    """Add `pairs` pairs of processes to `run` (a second stage continues where the first ended)."""
    from harness.measure.workers import _case, _opts_dict, _worker, share

    budget = opts.budget or BUDGETS[opts.profile]
    per_process = share(budget, max(2, STAGE_PAIRS[0]))
    start = run.pairs
    for j in range(start, start + pairs):
        order = (run.base, run.candidate) if j % 2 == 0 else (run.candidate, run.base)
        run.order.append("AB" if j % 2 == 0 else "BA")
        for side in order:
            spec = {"scenario": scenario_name, "settings": settings, "index": j, "processes": start + pairs,
                    "run_id": f"{run_id}-{side.name}", "loops": run.loops or None, "env": dict(env),
                    "opts": _opts_dict(replace(opts, budget=per_process, processes=1)), "stack": stack_dict,
                    "root": str(side.root) if side.root else None, "db_suffix": side.db_suffix}
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
    env = {**env, "git_sha": side.sha, "paired": {"side": side.name, "pairs": run.pairs, "order": "".join(run.order),
                                                    "base": run.base.sha, "candidate": run.candidate.sha}}
    return finish_result(scenario, opts, f"{run_id}-{side.name}", started, cases, env, side.timings,
                         not side.gaps, "; ".join(side.gaps) or None, processes=len(side.processes), **side.head)


def per_pair(run: PairedRun, case: str, variant: str, metric: str) -> tuple[list[float | None], list[float | None]]:
    """(base values, candidate values) of one row, one per pair, in pair order."""
    def value(proc: dict[str, CaseResult]) -> float | None:
        c = proc.get(case)
        v = c.variants.get(variant) if c else None
        if v is None or v.skipped:
            return None
        return v.median_s if metric == "time" else v.ratio
    n = run.pairs
    return [value(p) for p in run.base.processes[:n]], [value(p) for p in run.candidate.processes[:n]]


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
