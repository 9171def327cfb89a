"""How well `labs ci --against` sees a change between two commits, on this machine: detection and
false-alarm rates with their counts and exact binomial intervals.

It builds a throwaway git repository from tests/userproj (a small Django shop with its own
scenario), with real commits on top of a base commit:

  aa     — a commit that changes nothing measurable (a comment)
  cpu5   — +5 % CPU work in one variant (`fixed`)
  cpu10  — +10 % CPU work in the same variant
  query  — one extra query in `fixed`

then runs `labs ci --against base` N times per kind on one warm stack and counts the jobs that
flagged a timing regression (any `slower` row), a counter regression (`worse` queries), and the
wall time per job. Benchmarks are not tests: rerun it, read the numbers.

    python3 benchmarks/paired_calibration.py --kinds aa,cpu5,cpu10,query --jobs 20,10,10,10
    python3 benchmarks/paired_calibration.py --kinds aa --jobs 3 --suite quick   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.results.paired import binomial_interval  # noqa: E402

WORK = 50000
"""Loop iterations of the variant's CPU work at the base commit: ~90 % of the variant's time, so
+5.5 % work is about +5 % time (the job reports the change it measured, too)."""

SCENARIO = '''"""Two ways to render the shop's product list; one does extra CPU work (shop.work.WORK)."""
from harness.scenario import Case, Scenario, Variant


def _view(fn_name):
    def make(ctx):
        from django.test import RequestFactory

        from shop import views

        view, factory = getattr(views, fn_name), RequestFactory()
        return lambda: view(factory.get("/products/")).content.decode()
    return make


SCENARIO = Scenario(
    name="listing", title="The product list: plain vs with computed badges",
    requires=frozenset({"postgres"}),
    profiles={"quick": {"products": 200}, "nightly": {"products": 200}, "full": {"products": 2000}},
    cases=lambda p: [Case("products", dict(p), "plain",
                          (Variant("plain", _view("product_list_fixed")), Variant("fixed", _view("product_badges"))),
                          (), columns=("queries",))],
    setup=lambda ctx: __import__("shop.seed", fromlist=["seed"]).seed(ctx.params["products"]),
)
'''

BADGES = '''

def product_badges(request):
    """The first products, after a pass of CPU work per request (shop.work.WORK iterations)."""
    from shop.work import burn

    burn()
    return JsonResponse([{"id": p.id, "name": p.name, "category": p.category.name}
                         for p in Product.objects.select_related("category").order_by("id")[:10]], safe=False)
'''

EXTRA_QUERY = '''

def product_badges(request):  # noqa: F811 - the commit under test adds one query
    from shop.work import burn

    burn()
    Product.objects.count()
    return JsonResponse([{"id": p.id, "name": p.name, "category": p.category.name}
                         for p in Product.objects.select_related("category").order_by("id")[:10]], safe=False)
'''


def work_module(n: int) -> str:
    return f'''WORK = {n}


def burn() -> int:
    total = 0
    for i in range(WORK):
        total += i * i % 7
    return total
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def build_repo(where: Path) -> tuple[Path, dict[str, str]]:
    """The throwaway repository and its commits: kind -> sha."""
    repo = where / "shop-repo"
    shutil.copytree(ROOT / "tests" / "userproj", repo, ignore=shutil.ignore_patterns("__pycache__", "broken.py",
                                                                                      "product_list.*"))
    (repo / "perf" / "listing.py").write_text(SCENARIO)
    views = repo / "shop" / "views.py"
    views.write_text(views.read_text() + BADGES)
    (repo / "shop" / "work.py").write_text(work_module(WORK))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=lab@example.com", "-c", "user.name=lab", "add", "-A")
    git(repo, "-c", "user.email=lab@example.com", "-c", "user.name=lab", "commit", "-qm", "base")
    commits = {"base": git(repo, "rev-parse", "HEAD")}
    git(repo, "branch", "base")

    def commit(kind: str, edit) -> None:
        git(repo, "checkout", "-q", "-B", kind, commits["base"])
        edit()
        git(repo, "-c", "user.email=lab@example.com", "-c", "user.name=lab", "commit", "-qam", kind)
        commits[kind] = git(repo, "rev-parse", "HEAD")

    commit("aa", lambda: views.write_text(views.read_text() + "\n# a comment: nothing measurable changes\n"))
    commit("cpu5", lambda: (repo / "shop" / "work.py").write_text(work_module(round(WORK * 1.055))))
    commit("cpu10", lambda: (repo / "shop" / "work.py").write_text(work_module(round(WORK * 1.11))))
    commit("query", lambda: views.write_text(views.read_text() + EXTRA_QUERY))
    return repo, commits


def job(repo: Path, kind: str, suite: str, out: Path, env: dict) -> dict:
    git(repo, "checkout", "-q", kind)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness", "ci", "--suite", suite, "--scenario", "listing",
                           "--against", "base", "--results-dir", str(out / "results"), "--out-dir", str(out / "ci")],
                          cwd=repo, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.monotonic() - t0
    summary = (out / "ci" / "summary.md").read_text() if (out / "ci" / "summary.md").exists() else ""
    flagged = [" ".join(c.strip() for c in line.split("|")[3:5]) for line in summary.splitlines()
               if any(f"| {m} |" in line for m in ("time", "ratio")) and "slower" in line]
    timing = bool(flagged)
    query = any("| queries |" in line and "worse" in line for line in summary.splitlines())
    return {"kind": kind, "exit": done.returncode, "timing": timing, "flagged": flagged, "query": query,
            "wall_s": round(wall, 1),
            "stage2": "stage 2" in done.stderr, "error": done.stderr[-600:] if done.returncode not in (0, 1) else ""}


def report(rows: list[dict]) -> str:
    lines = ["| commit | jobs | timing flagged | 95 % interval | queries flagged | 95 % interval | stage 2 | "
             "wall s (median) |", "|---|---|---|---|---|---|---|---|"]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        n = len(mine)
        t = sum(r["timing"] for r in mine)
        q = sum(r["query"] for r in mine)
        tl, th = binomial_interval(t, n)
        ql, qh = binomial_interval(q, n)
        walls = sorted(r["wall_s"] for r in mine)
        lines.append(f"| {kind} | {n} | {t}/{n} | {tl:.2f}–{th:.2f} | {q}/{n} | {ql:.2f}–{qh:.2f} | "
                     f"{sum(r['stage2'] for r in mine)} | {walls[len(walls) // 2]:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="aa,cpu5,cpu10,query")
    ap.add_argument("--jobs", default="20,10,10,10", help="jobs per kind (one number for all, or one per kind)")
    ap.add_argument("--suite", default="nightly")
    ap.add_argument("--json", type=Path, help="also write every job's row here")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    jobs = [int(x) for x in args.jobs.split(",")]
    jobs = jobs * len(kinds) if len(jobs) == 1 else jobs
    signal.signal(signal.SIGTERM, lambda *_a: sys.exit(143))  # a kill still stops the warm stack (finally)
    where = Path(tempfile.mkdtemp(prefix="labs-paired-cal-"))
    runtime = Path(tempfile.mkdtemp(prefix="labs-paired-rt-"))
    os.chmod(runtime, 0o755)
    env = {**os.environ, "LABS_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "harness", "stack", "up"], env=env, check=True, capture_output=True)
    rows: list[dict] = []
    try:
        repo, _commits = build_repo(where)
        for kind, n in zip(kinds, jobs):
            for i in range(n):
                row = job(repo, kind, args.suite, where / f"{kind}-{i}", env)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        subprocess.run([sys.executable, "-m", "harness", "stack", "down"], env=env, capture_output=True)
        shutil.rmtree(where, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
    print(report(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
