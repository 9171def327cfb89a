"""Results on disk: `results/<run-id>.json`, one file per scenario run, written atomically.

Format history (the schema number is not the package version):
  1 — first format: run metadata, env, params, cases[] of {params, baseline, variants{}, checks[]},
      `complete` + `reason` for interrupted runs, `lesson` lines, phase `timings`.
  2 — metrics declare themselves: top-level `metrics` {name: {label, unit, better, kind,
      tolerance, percent, show}}; per case `timing` {mode, statistic} and `charts` [...]; per
      variant `series` and `x`. Upgrading a schema-1 file fills these from the engine's tables of
      that time (frozen below) and infers each case's statistic from its stored samples.
  3 — repeats in worker processes: top-level `processes` and `gc`; per case `processes` and
      `order` (the round design); per variant `groups` (samples per process), `process_ratios`,
      `process_medians_s`, and the interval's real coverage and method (`ratio_ci_level`,
      `ratio_ci_method`), and `statements` (normalized SQL -> per unit). A schema-2 file is one
      process whose interval was a percentile bootstrap labelled 95 %.
Loading an older schema goes through `_upgrade_to_N` functions, one per bump; a newer schema
than this code knows is refused with a clear message (never guessed).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

from harness.errors import UsageError
from harness.results.model import CaseResult, CheckOutcome, Result, VariantResult

SCHEMA = 3
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
    cases = [case_from_dict(case) for case in data["cases"]]
    fields = {k: v for k, v in data.items() if k not in {"schema", "ok", "cases", "lesson"}}
    return Result(**fields, cases=tuple(cases), lesson=tuple(data.get("lesson", ())))


def case_to_dict(case: CaseResult) -> dict[str, Any]:
    """One case as JSON-ready data (what a worker process sends its parent)."""
    return json.loads(json.dumps(asdict(case), default=_json_default))


def case_from_dict(case: dict[str, Any]) -> CaseResult:
    """A case of the current schema from its JSON data."""
    tuples = ("samples_s", "explain", "groups", "process_ratios", "process_medians_s")
    variants = {
        name: VariantResult(**{**v, **{k: tuple(v.get(k) or ()) for k in tuples},
                               "ratio_ci95": tuple(v["ratio_ci95"]) if v.get("ratio_ci95") else None})
        for name, v in case["variants"].items()
    }
    checks = tuple(CheckOutcome(**c) for c in case.get("checks", ()))
    return CaseResult(**{**case, "variants": variants, "checks": checks, "columns": tuple(case.get("columns", ())),
                         "charts": tuple(case.get("charts", ()))})


def _upgrade_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: declarations as the engine of schema 1 held them (a frozen copy: these names
    were the engine's tables then), each case's statistic read back from its samples."""
    import re
    import statistics

    labels = {"queries": "queries", "rows": "rows", "cache_hits": "hits", "cache_misses": "misses",
              "cache_sets": "sets", "cache_deletes": "dels", "hit_ratio": "hit %", "stale_reads": "stale",
              "max_unflushed": "unflushed", "lost_keys_at_crash": "lost@crash", "queries_per_repeat": "q/repeat",
              "recomputes": "recomputes", "speedup": "speedup", "efficiency": "efficiency",
              "cpu_s_per_unit": "CPU s/unit", "start_s": "start s", "p50_ms": "p50 ms", "p95_ms": "p95 ms",
              "p99_ms": "p99 ms", "failures": "fail", "server_cpu": "srv CPU", "generator_cpu": "gen CPU",
              "worker_restarts": "restarts", "uss_mib": "USS MiB", "pss_mib": "PSS MiB", "top_node": "plan",
              "index_kib": "index KiB", "build_s": "build s", "insert_ms_per_1k": "ins ms/1k",
              "shared_hit": "buf hit", "server_conns": "srv conns", "sessions_per_request": "sess/req",
              "error_rate": "err rate", "connect_ms": "connect ms"}
    shown = {"queries", "rows", "cache_hits", "cache_misses", "cache_sets", "cache_deletes"}
    higher = {"cache_hits", "warm_hits", "hit_ratio"}
    exact = {"stale_reads", "hit_ratio", "queries_per_repeat", "lost_after_recovery"}
    names: set[str] = set()
    for case in data.get("cases", ()):
        for v in case.get("variants", {}).values():
            names |= set(v.get("counters", {})) | set(v.get("metrics", {}))
    counters = {k for case in data.get("cases", ()) for v in case.get("variants", {}).values()
                for k in v.get("counters", {})}
    data["metrics"] = {
        n: {"label": labels.get(n, ""), "unit": "", "better": "higher" if n in higher else ("lower" if (
            n in counters or n in exact) else None), "kind": "exact" if (n in counters or n in exact) else "info",
            "tolerance": 0.0, "percent": n.endswith("ratio") or n == "efficiency", "show": n in shown,
            "description": ""} for n in sorted(names)}
    for case in data.get("cases", ()):
        variants = case.get("variants", {})
        base = variants.get(case.get("baseline"), {}).get("samples_s") or []
        statistic = "median_ratio"
        for name, v in variants.items():  # the stored ratio tells which statistic produced it
            s = v.get("samples_s") or []
            if name != case.get("baseline") and v.get("ratio") and base and len(s) == len(base) and sum(base) > 0:
                totals = sum(s) / sum(base)
                paired = statistics.median(x / y for x, y in zip(s, base) if y > 0)
                if abs(totals - v["ratio"]) < abs(paired - v["ratio"]):
                    statistic = "ratio_of_totals"
                break
        # schema 1 did not record the mode; only fixed loops can be told from the samples
        mode = "fixed_loops" if statistic == "ratio_of_totals" else "unrecorded"
        case["timing"] = {"mode": mode, "statistic": statistic}
        charts = []
        if any("p95_ms" in v.get("metrics", {}) for v in variants.values()):
            charts.append({"kind": "bars", "metrics": ["p50_ms", "p95_ms", "p99_ms"], "y_label": "latency, ms",
                           "title": "latency percentiles"})
        for name, v in variants.items():
            m = re.fullmatch(r"([a-z_]+?)_(\d+)", name)
            if m and "speedup" in v.get("metrics", {}):
                v["series"], v["x"] = m.group(1), float(m.group(2))
        if any(v.get("series") for v in variants.values()):
            charts.append({"kind": "series", "metric": "speedup", "x_label": "workers (n)",
                           "y_label": "speedup vs sequential", "ideal": "cores", "log_x": True})
        case["charts"] = charts
    return data


def _upgrade_to_3(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 -> 3: one process; its interval as what it was (a bootstrap over rounds)."""
    data.setdefault("processes", 1)
    data.setdefault("gc", False)  # schema 2 runs disabled the collector inside samples
    for case in data.get("cases", ()):
        case.setdefault("processes", 1)
        case.setdefault("order", {"design": "rotation"})
        for v in case.get("variants", {}).values():
            samples = v.get("samples_s") or []
            v.setdefault("groups", [len(samples)] if samples else [])
            v.setdefault("process_ratios", [v["ratio"]] if v.get("ratio") is not None else [])
            v.setdefault("process_medians_s", [v["median_s"]] if v.get("median_s") is not None else [])
            v.setdefault("ratio_ci_level", 0.95 if v.get("ratio_ci95") else None)
            v.setdefault("ratio_ci_method", f"percentile bootstrap of {len(samples)} rounds (schema 2)"
                         if v.get("ratio_ci95") else "")
            v.setdefault("statements", {})
    return data


_UPGRADES: dict[int, Any] = {2: _upgrade_to_2, 3: _upgrade_to_3}
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
        _default_mode(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc} (earlier results are intact)",
                         hint="free some space or choose another --results-dir") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(directory: Path, room_bytes: int = 8 << 20) -> None:
    """Fail before any work when results could not be saved: the directory cannot be created or
    written, or its disk has less than `room_bytes` free."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-probe.", suffix=".tmp")
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
        free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
    except OSError as exc:
        raise UsageError(f"cannot write results to {directory}/: {exc.strerror or exc}",
                         hint="choose another place with --results-dir (nothing was run)") from None
    if free < room_bytes:
        raise UsageError(f"{directory}/ has only {free // 1024} KiB free: the results would not fit",
                         hint="free some space or choose another --results-dir (nothing was run)")


@contextlib.contextmanager
def locked_dir(directory: Path, what: str) -> Iterator[Path]:
    """Hold `directory` for one writer (a `labs ci` out-dir): a second one is refused at once with
    a clear error instead of both writing and the last one winning. The lock dies with the process."""
    import fcntl

    check_writable(directory, room_bytes=0)
    fh = open(directory / ".lock", "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another {what} is writing to {directory}/ right now",
                             hint="give each job its own --out-dir, or wait for the other to finish") from None
        yield directory
    finally:
        fh.close()


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a text file so a reader never sees half of it: temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        _default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _default_mode(path: str) -> None:
    """mkstemp makes files 0600; a result is an ordinary file: the mode the umask gives new files."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


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


def load_many(paths: Iterable[Path]) -> list[Result]:
    """Load every readable result; a corrupted or foreign file is skipped with a warning naming it
    (one broken old file must not block compare, baseline save or history)."""
    from harness.commands.console import warn

    results = []
    for path in paths:
        try:
            results.append(load(path))
        except UsageError as exc:
            warn(f"skipped {exc.message} — delete or repair it")
    return results


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


def save_baseline(name: str, refs: list[str], results_dir: Path = DEFAULT_DIR, runs: int = 1) -> list[Path]:
    """Copy runs into results/baselines/NAME/ (default: the newest `runs` complete runs of each
    scenario, of the profile of its newest run). Several runs carry their own noise: how much
    each row moves between runs of the same code, which sizes the gate of `labs compare`.

    Baselines are meant to be committed: `labs ci` compares against them.
    """
    import re
    import shutil

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise UsageError(f"bad baseline name {name!r}: letters, digits, '.', '_' and '-' only")
    if refs:
        paths = [resolve(ref, results_dir) for ref in refs]
    else:
        complete: dict[str, list[tuple[str, Path]]] = {}
        for p in list_runs(results_dir):
            try:
                r = load(p)
            except UsageError as exc:
                from harness.commands.console import warn

                warn(f"skipped {exc.message} — delete or repair it")
                continue
            if r.complete:
                complete.setdefault(r.scenario, []).append((r.profile, p))
        paths = []
        for scenario in sorted(complete):
            profile = complete[scenario][-1][0]
            same = [p for prof, p in complete[scenario] if prof == profile]
            paths += same[-runs:]
    if not paths:
        raise UsageError(f"no complete runs in {results_dir}/ to make a baseline of", hint="labs run all")
    for p in paths:
        if not load(p).complete:
            raise UsageError(f"{p.name} is an incomplete run: it cannot be a baseline")
    # the new copy is built and fsynced beside the old one with a manifest of its files, then
    # swapped in by two renames; a kill between them leaves both copies whole and the next reader
    # rolls the new one in (`recover_baseline`); a half copy is never used (the manifest check)
    root = baselines_dir(results_dir)
    root.mkdir(parents=True, exist_ok=True)
    target, staging, old = root / name, root / f".{name}.new", root / f".{name}.old"
    recover_baseline(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    manifest = {}
    for p in paths:
        shutil.copy2(p, staging / p.name)
        manifest[p.name] = _sha256(staging / p.name)
    write_text_atomic(staging / MANIFEST, json.dumps({"files": manifest}, indent=1) + "\n")
    _fsync_dir(staging)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    _fsync_dir(root)
    shutil.rmtree(old, ignore_errors=True)
    return [target / p.name for p in paths]


def recover_baseline(target: Path) -> None:
    """Finish a `baseline save` that was killed between its two renames: the new copy, whole
    (its manifest matches), takes the missing baseline's place; half copies are removed."""
    import shutil

    staging, old = target.parent / f".{target.name}.new", target.parent / f".{target.name}.old"
    if not target.exists() and staging.is_dir():
        try:
            baseline_runs(staging)
        except UsageError:
            pass
        else:
            staging.rename(target)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


MANIFEST = ".manifest.json"
"""A baseline's files and their SHA-256, written last: a baseline that does not match it is refused."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def baseline_runs(directory: Path) -> list[Path]:
    """A baseline's result files, checked against its manifest: a baseline whose files are not
    the ones it was saved with (a half copy, an edit) is refused, not used."""
    files = list_runs(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        return files  # saved before manifests: nothing to check against
    try:
        manifest = json.loads(manifest_path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"baseline {directory.name!r}: its manifest is unreadable",
                         hint=f"save it again: labs baseline save {directory.name}") from None
    found = {p.name: _sha256(p) for p in files}
    if found != manifest:
        missing = sorted(set(manifest) - set(found))
        changed = sorted(k for k in found if manifest.get(k) != found[k])
        raise UsageError(f"baseline {directory.name!r} does not match its manifest ({len(missing)} files missing, "
                         f"{len(changed)} changed or extra): it was not saved whole",
                         hint=f"save it again: labs baseline save {directory.name}")
    return files


def list_baselines(results_dir: Path = DEFAULT_DIR) -> dict[str, list[Result]]:
    root = baselines_dir(results_dir)
    if not root.is_dir():
        return {}
    for d in list(root.glob(".*.new")):
        recover_baseline(root / d.name[1:-4])
    return {d.name: load_many(baseline_runs(d)) for d in sorted(root.iterdir())
            if d.is_dir() and not d.name.startswith(".")}
