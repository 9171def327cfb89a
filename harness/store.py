"""Results on disk: `results/<run-id>.json`, one file per scenario run, written atomically.

Format history (the schema number is not the package version):
  1 — first format: run metadata, env, params, cases[] of {params, baseline, variants{}, checks[]},
      `complete` + `reason` for interrupted runs, `lesson` lines, phase `timings`.
Loading an older schema goes through `_upgrade_to_N` functions, one per bump; a newer schema
than this code knows is refused with a clear message (never guessed).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.model import CaseResult, CheckOutcome, Result, VariantResult

SCHEMA = 1
DEFAULT_DIR = Path("results")


def to_dict(result: Result) -> dict[str, Any]:
    data = asdict(result)
    data = {"schema": SCHEMA, **data}
    data["ok"] = result.ok
    return data


def from_dict(data: dict[str, Any]) -> Result:
    schema = data.get("schema")
    if not isinstance(schema, int):
        raise ValueError("no schema number")
    if schema > SCHEMA:
        raise ValueError(f"schema {schema} is newer than this labs understands ({SCHEMA}); upgrade labs")
    for version in range(schema + 1, SCHEMA + 1):
        data = _UPGRADES[version](data)
    cases = []
    for case in data["cases"]:
        variants = {
            name: VariantResult(
                **{**v, "samples_s": tuple(v.get("samples_s", ())),
                   "ratio_ci95": tuple(v["ratio_ci95"]) if v.get("ratio_ci95") else None,
                   "explain": tuple(v.get("explain", ()))}
            )
            for name, v in case["variants"].items()
        }
        checks = tuple(CheckOutcome(**c) for c in case.get("checks", ()))
        cases.append(CaseResult(**{**case, "variants": variants, "checks": checks,
                                   "columns": tuple(case.get("columns", ()))}))
    fields = {k: v for k, v in data.items() if k not in {"schema", "ok", "cases", "lesson"}}
    return Result(**fields, cases=tuple(cases), lesson=tuple(data.get("lesson", ())))


_UPGRADES: dict[int, Any] = {}
"""version N -> function turning a schema N-1 document into schema N."""


def save(result: Result, directory: Path = DEFAULT_DIR) -> Path:
    """Write atomically: a temp file in the same directory, fsync, then rename over the target."""
    path = directory / f"{result.run_id}.json"
    text = json.dumps(to_dict(result), indent=1, sort_keys=False, default=_json_default)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{result.run_id}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write results to {directory}/: {exc.strerror or exc}",
                         hint="choose another place with --results-dir") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc} (earlier results are intact)",
                         hint="free some space or choose another --results-dir") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def load(path: Path) -> Result:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no result file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON (line {exc.lineno}): the file is corrupted",
                         hint="delete it or re-run the scenario") from None
    try:
        return from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is not a labs result file: {exc}") from None


def list_runs(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Result files, oldest first (run ids start with a UTC timestamp)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.json") if not p.name.startswith("."))


def resolve(ref: str, directory: Path = DEFAULT_DIR) -> Path:
    """A run id, a path, `latest` or `previous` -> the file."""
    if ref in {"latest", "previous"}:
        runs = list_runs(directory)
        need = 1 if ref == "latest" else 2
        if len(runs) < need:
            raise UsageError(f"no {ref} run in {directory}/", hint="run a scenario first: labs run n_plus_one")
        return runs[-need]
    path = Path(ref)
    if path.suffix == ".json" and path.exists():
        return path
    candidate = directory / f"{ref}.json"
    if candidate.exists():
        return candidate
    matches = [p for p in list_runs(directory) if p.stem.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"run id {ref!r} is ambiguous ({len(matches)} runs match)")
    raise UsageError(f"no run {ref!r} in {directory}/", hint="`labs show latest` or list the directory")


def baselines_dir(results_dir: Path = DEFAULT_DIR) -> Path:
    return results_dir / "baselines"


def save_baseline(name: str, refs: list[str], results_dir: Path = DEFAULT_DIR) -> list[Path]:
    """Copy runs into results/baselines/NAME/ (default: the newest complete run of each scenario).

    Baselines are meant to be committed: `labs ci` compares against them.
    """
    import re
    import shutil

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise UsageError(f"bad baseline name {name!r}: letters, digits, '.', '_' and '-' only")
    if refs:
        paths = [resolve(ref, results_dir) for ref in refs]
    else:
        newest: dict[str, Path] = {}
        for p in list_runs(results_dir):
            r = load(p)
            if r.complete:
                newest[r.scenario] = p
        paths = [newest[k] for k in sorted(newest)]
    if not paths:
        raise UsageError(f"no complete runs in {results_dir}/ to make a baseline of", hint="labs run all")
    for p in paths:
        if not load(p).complete:
            raise UsageError(f"{p.name} is an incomplete run: it cannot be a baseline")
    target = baselines_dir(results_dir) / name
    staging = baselines_dir(results_dir) / f".{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for p in paths:
        shutil.copy2(p, staging / p.name)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return [target / p.name for p in paths]


def list_baselines(results_dir: Path = DEFAULT_DIR) -> dict[str, list[Result]]:
    root = baselines_dir(results_dir)
    if not root.is_dir():
        return {}
    return {d.name: [load(p) for p in list_runs(d)] for d in sorted(root.iterdir())
            if d.is_dir() and not d.name.startswith(".")}


def to_pytest_benchmark(result: Result) -> dict[str, Any]:
    """The result in pytest-benchmark's JSON layout (what Bencher and pytest-benchmark compare read):
    one benchmark per case × variant, its `data` the interleaved per-round samples."""
    import statistics

    benchmarks = []
    for case in result.cases:
        for v in case.variants.values():
            if v.skipped or not v.samples_s:
                continue
            data = list(v.samples_s)
            q = statistics.quantiles(data, n=4) if len(data) > 1 else [data[0]] * 3
            mean = statistics.fmean(data)
            iqr = q[2] - q[0]
            benchmarks.append({
                "group": f"{result.scenario}:{case.name}",
                "name": f"{v.name}[{case.name}]",
                "fullname": f"labs::{result.scenario}::{case.name}::{v.name}",
                "params": dict(case.params) | {"variant": v.name},
                "param": f"{case.name}-{v.name}",
                "extra_info": {"counters": v.counters, "ratio_to_baseline": v.ratio,
                               "ratio_ci95": list(v.ratio_ci95) if v.ratio_ci95 else None,
                               "checks_ok": all(c.ok or c.skipped for c in case.checks if c.variant == v.name),
                               "interleaved_rounds": case.rounds, "baseline": case.baseline},
                "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": case.rounds,
                            "max_time": None, "min_time": None, "warmup": True},
                "stats": {"min": min(data), "max": max(data), "mean": mean,
                          "stddev": statistics.stdev(data) if len(data) > 1 else 0.0, "rounds": len(data),
                          "median": statistics.median(data), "iqr": iqr, "q1": q[0], "q3": q[2],
                          "iqr_outliers": sum(1 for x in data if x < q[0] - 1.5 * iqr or x > q[2] + 1.5 * iqr),
                          "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": min(data), "hd15iqr": max(data),
                          "ops": 1.0 / mean if mean else 0.0, "total": sum(data) * v.loops, "data": data,
                          "iterations": v.loops},
            })
    env = result.env
    return {
        "machine_info": {"node": env.get("hostname"), "processor": env.get("cpu_model"), "machine": env.get("machine"),
                         "python_implementation": env.get("python_impl"), "python_version": env.get("python"),
                         "cpu": {"count": env.get("cpus"), "brand_raw": env.get("cpu_model")}},
        "commit_info": {"id": env.get("git_sha"), "dirty": env.get("git_dirty"), "project": "perf-lab"},
        "benchmarks": benchmarks,
        "datetime": result.started_at,
        "version": "5.1.0",
    }
