"""Calibrate the regression gate on this machine: false alarms on unchanged code, detection of
real slowdowns, and whether intervals cover what the next run sees.

    python benchmarks/calibrate.py                    # 20 A/A + 3 × 10 A/B runs, nightly profile
    python benchmarks/calibrate.py --aa 6 --ab 3      # a shorter look
    python benchmarks/calibrate.py --report calib-out # print the report of a finished run again

What it does, with the real CLI (`labs run`, worker processes, a warm stack):
  1. writes a scenario (`calib_n1`, an N+1 over the lab's bookstore: naive, select_related,
     prefetch_related, values_agg at 20 and 100 books) into a scratch project, with knobs to
     inject a slowdown into one variant: extra CPU work worth X % of its measured time, or one
     extra query per unit;
  2. runs it 3 times and saves those runs as the baseline (`labs baseline save calib --runs 3`);
  3. A/A: runs it --aa more times unchanged; each run is compared with the baseline, its history
     window being the runs before it (as a nightly job's would be);
  4. A/B: --ab runs each with +5 % and +10 % CPU work in prefetch_related at 100 books, and with
     one extra query there — each compared with the baseline and the A/A history;
  5. writes calib-out/report.md and report.json: false verdicts per A/A comparison (time, ratio,
     counters), detection rates, interval coverage (the share of A/A runs whose 95 % interval of
     a ratio contains the median of the other runs' estimates), and wall time per run.

Figures depend on the machine; rerun it where the nightly job runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

SCENARIO = '''"""Calibration scenario: an N+1 over the lab's bookstore, with injectable slowdowns."""
from __future__ import annotations

from harness.scenario import Case, Scenario, Variant, queries_exactly, same_result_as

TARGET = ("books=100", "prefetch_related")


def burn(iterations: int) -> int:
    """Deterministic pure-Python CPU work: the same count costs the same instructions every time."""
    total = 0
    for i in range(iterations):
        total = (total * 31 + i) % 1_000_003
    return total


def rows(kind: str, n: int):
    from django.contrib.postgres.aggregates import ArrayAgg

    from labs.bookstore.models import Book

    if kind == "values_agg":
        return [(r["id"], r["publisher__name"], tuple(sorted(t for t in r["tags"] if t)))
                for r in Book.objects.order_by("id").values("id", "publisher__name")
                .annotate(tags=ArrayAgg("tags__name"))[:n]]
    qs = Book.objects.order_by("id")
    if kind in ("select_related", "prefetch_related"):
        qs = qs.select_related("publisher")
    if kind == "prefetch_related":
        qs = qs.prefetch_related("tags")
    return [(b.id, b.publisher.name, tuple(sorted(t.name for t in b.tags.all()))) for b in qs[:n]]


def variant(kind: str, n: int, p):
    injected = (f"books={n}", kind) == TARGET
    iterations = p["burn"] if injected else 0
    extra = p["extra_query"] and injected

    def make(ctx):
        def unit():
            out = rows(kind, n)
            if iterations:
                burn(iterations)
            if extra:
                from labs.bookstore.models import Book

                Book.objects.filter(pk=1).exists()
            return out
        return unit
    return make


QUERIES = {"naive": lambda n: 1 + 2 * n, "select_related": lambda n: 1 + n, "prefetch_related": lambda n: 2,
           "values_agg": lambda n: 1}


def cases(p):
    out = []
    for n in (20, 100):
        kinds = tuple(QUERIES)
        checks = [same_result_as(k, "naive") for k in kinds[1:]]
        checks += [queries_exactly(k, QUERIES[k](n) + (1 if p["extra_query"] and (f"books={n}", k) == TARGET
                                                       else 0)) for k in kinds]
        out.append(Case(f"books={n}", {"books": n}, "naive", tuple(Variant(k, variant(k, n, p)) for k in kinds),
                        tuple(checks), columns=("queries",)))
    return out


def setup(ctx):
    from labs.bookstore.seed import seed_catalog

    seed_catalog(1000, ctx.seed)


SCENARIO = Scenario(
    name="calib_n1", title="calibration: N+1 with injectable slowdowns", requires=frozenset({"postgres"}),
    profiles={"quick": {"burn": 0, "extra_query": False}, "full": {"burn": 0, "extra_query": False}},
    cases=cases, setup=setup,
)
'''


def labs(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True)


def run_once(project: Path, results: Path, profile: str, params: list[str]) -> tuple[Path, float]:
    before = set(results.glob("*.json")) if results.exists() else set()
    args = ["run", "calib_n1", "--profile", profile, "--results-dir", str(results), "--no-chart", "--no-lesson"]
    for p in params:
        args += ["--param", p]
    t0 = time.perf_counter()
    done = labs(*args, cwd=project)
    wall = time.perf_counter() - t0
    new = sorted(set(results.glob("*.json")) - before)
    if done.returncode not in (0, 1) or not new:
        raise SystemExit(f"labs run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return new[-1], wall


def verdicts(comparison) -> dict[str, list]:
    out: dict[str, list] = {"time": [], "ratio": [], "counters": []}
    for r in comparison.rows:
        if r.verdict in {"slower", "faster"}:
            out[r.metric].append((r.case, r.variant, r.verdict, round(r.change, 4)))
        elif r.verdict in {"worse", "better", "changed"}:
            out["counters"].append((r.case, r.variant, r.metric, r.verdict))
    return out


def compare_one(new_path: Path, aa_dir: Path):
    from harness.results import compare as cmp
    from harness.results import store

    new = store.load(new_path)
    _label, base = cmp.load_side("calib", aa_dir)
    history = cmp.load_history(aa_dir, [new])
    return cmp.compare("baseline calib", base, new.run_id, [new], history=history)


def burn_iterations(fraction: float, aa_dir: Path) -> int:
    """Iterations of `burn` worth `fraction` of prefetch_related's time per unit at 100 books."""
    from harness.results import store

    times = []
    for path in store.list_runs(aa_dir):
        r = store.load(path)
        case = next(c for c in r.cases if c.name == "books=100")
        times.append(case.variants["prefetch_related"].median_s)
    target_s = fraction * statistics.median(times)
    ns = {}
    exec(SCENARIO.split("def rows")[0], ns)  # burn() exactly as the scenario runs it
    per_iteration = min(timeit.repeat(lambda: ns["burn"](100_000), number=1, repeat=5)) / 100_000
    return max(1, round(target_s / per_iteration))


def coverage(aa_paths: list[Path]) -> dict:
    """Share of runs whose ratio interval contains the median of the other runs' estimates."""
    from harness.results import store

    rows: dict[tuple, list] = {}
    for path in aa_paths:
        r = store.load(path)
        for case in r.cases:
            for v in case.variants.values():
                if v.name != case.baseline and v.ratio:
                    rows.setdefault((case.name, v.name), []).append((v.ratio, v.ratio_ci95))
    hits = total = 0
    per_row = {}
    for key, values in rows.items():
        h = 0
        for i, (_ratio, ci) in enumerate(values):
            others = statistics.median(x for j, (x, _c) in enumerate(values) if j != i)
            h += ci[0] <= others <= ci[1]
        per_row[f"{key[0]} {key[1]}"] = f"{h}/{len(values)}"
        hits, total = hits + h, total + len(values)
    return {"share": hits / total if total else None, "per_row": per_row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aa", type=int, default=20, help="A/A comparisons (unchanged code)")
    parser.add_argument("--ab", type=int, default=10, help="runs per injected change")
    parser.add_argument("--profile", default="nightly")
    parser.add_argument("--out", type=Path, default=Path("calib-out"))
    parser.add_argument("--report", type=Path, help="only print the report of an earlier run")
    args = parser.parse_args()
    if args.report:
        print((args.report / "report.md").read_text())
        return
    out = args.out.resolve()
    project, aa_dir = out / "project", out / "aa"
    (project / "perf").mkdir(parents=True, exist_ok=True)
    (project / "perf" / "calib_n1.py").write_text(SCENARIO)
    (project / "labs.toml").write_text('scenario_paths = ["perf"]\n')
    labs("stack", "up", cwd=project)
    report: dict = {"profile": args.profile, "aa": [], "ab": {}, "walls": []}
    try:
        for i in range(3):
            _path, wall = run_once(project, aa_dir, args.profile, [])
            report["walls"].append(wall)
            print(f"baseline run {i + 1}/3: {wall:.0f} s", flush=True)
        saved = labs("baseline", "save", "calib", "--runs", "3", "--results-dir", str(aa_dir), cwd=project)
        assert saved.returncode == 0, saved.stderr
        aa_paths = []
        for i in range(args.aa):
            path, wall = run_once(project, aa_dir, args.profile, [])
            aa_paths.append(path)
            report["walls"].append(wall)
            v = verdicts(compare_one(path, aa_dir))
            report["aa"].append(v)
            print(f"A/A {i + 1}/{args.aa}: {wall:.0f} s · false verdicts: time {len(v['time'])}, "
                  f"ratio {len(v['ratio'])}, counters {len(v['counters'])}", flush=True)
        injections = {"cpu +5%": [f"burn={burn_iterations(0.05, aa_dir)}"],
                      "cpu +10%": [f"burn={burn_iterations(0.10, aa_dir)}"],
                      "one extra query": ["extra_query=true"]}
        for label, params in injections.items():
            rows = []
            for i in range(args.ab):
                path, wall = run_once(project, out / f"ab-{label.replace(' ', '_')}", args.profile, params)
                report["walls"].append(wall)
                c = compare_one(path, aa_dir)
                hit = [r for r in c.rows if r.case == "books=100" and r.variant == "prefetch_related"]
                found = {r.metric: r.verdict for r in hit}
                rows.append({"ratio": found.get("ratio"), "time": found.get("time"),
                             "queries": found.get("queries"), "change": next((round(r.change, 4) for r in hit
                                                                              if r.metric == "ratio"), None)})
                print(f"{label} {i + 1}/{args.ab}: ratio {found.get('ratio')}, time {found.get('time')}, "
                      f"queries {found.get('queries')}", flush=True)
            report["ab"][label] = {"params": params, "runs": rows}
        report["coverage"] = coverage(sorted(aa_dir.glob("*.json")))
    finally:
        labs("stack", "down", cwd=project)
    write_report(report, out)
    print((out / "report.md").read_text())


def write_report(report: dict, out: Path) -> None:
    aa = report["aa"]
    n = len(aa)
    lines = [f"# Gate calibration ({report['profile']} profile, {n} A/A comparisons)", ""]
    for key in ("time", "ratio", "counters"):
        per = [len(v[key]) for v in aa]
        lines.append(f"- A/A false verdicts on {key}: {sum(per)} in total; comparisons with any: "
                     f"{sum(1 for x in per if x)} of {n}")
    for label, data in report["ab"].items():
        runs = data["runs"]
        lines.append(f"- {label}: detected on ratio {sum(r['ratio'] == 'slower' for r in runs)}/{len(runs)}, on time "
                     f"{sum(r['time'] == 'slower' for r in runs)}/{len(runs)}, on queries "
                     f"{sum(r['queries'] == 'worse' for r in runs)}/{len(runs)} (ratio change: "
                     f"{', '.join(str(r['change']) for r in runs)})")
    cov = report.get("coverage", {})
    if cov.get("share") is not None:
        lines.append(f"- interval calibration: {cov['share']:.0%} of A/A runs' 95 % ratio intervals contain the "
                     f"median of the other runs ({', '.join(f'{k} {v}' for k, v in cov['per_row'].items())})")
    walls = report["walls"]
    lines.append(f"- wall time per run: median {statistics.median(walls):.0f} s (min {min(walls):.0f}, "
                 f"max {max(walls):.0f}), warm stack")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
