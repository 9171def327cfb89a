"""Change points on a real history: a throwaway branch of N commits with a real regression in the
middle, backfilled (each commit measured with its own code), then looked for where a user looks.

    python benchmarks/history_backfill.py                  # 15 commits, the regression at commit 8
    python benchmarks/history_backfill.py --commits 9 --keep /tmp/hist

What it does, in a scratch clone of this repository's HEAD (your checkout is never touched):
  1. commits 1..N on a branch; commit `--at` drops select_related from n_plus_one's select_related
     variant (and updates its expected query count, as a careless change would, so every check
     still passes and the commit is a verified point);
  2. `labs asv backfill HEAD~N..HEAD` measures every commit in asv and keeps the lab's results;
  3. `labs history --all` must name a step at that commit for the variant's ratio (timed against
     the case's baseline in the same rounds) and queries, and nowhere else for them, and the
     dashboard HTML must link it; `asv publish` must chart the commits and asv's own step
     detection (regressions.json) must name the same commit. Steps of absolute times are printed
     too: on a shared machine they also follow the machine, which is why the lab gates on ratios.
Prints what it found and exits 1 when any of it is missing. `--reuse` looks again at a kept
repository without measuring (after `--keep DIR`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD = 'Book.objects.select_related("publisher").order_by("id")[:n]]'
NEW = 'Book.objects.order_by("id")[:n]]'
OLD_COUNT = '"select_related": (select_related, lambda n: 1 + n, False)'
NEW_COUNT = '"select_related": (select_related, lambda n: 1 + 2 * n, False)'


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def make_history(repo: Path, commits: int, at: int) -> dict[int, str]:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    git(repo, "checkout", "-q", "-B", "main")  # the branch asv.conf.json publishes (a throwaway clone)
    for key, value in (("user.name", "history sim"), ("user.email", "sim@example.invalid")):
        git(repo, "config", key, value)
    shas = {}
    source = repo / "scenarios" / "n_plus_one.py"
    for i in range(1, commits + 1):
        if i == at:
            text = source.read_text()
            if OLD not in text or OLD_COUNT not in text:
                sys.exit("scenarios/n_plus_one.py changed: update this script's OLD/OLD_COUNT")
            source.write_text(text.replace(OLD, NEW, 1).replace(OLD_COUNT, NEW_COUNT, 1))
            message = "n_plus_one: drop select_related (the regression)"
        else:
            notes = repo / "docs" / "history-sim.txt"
            notes.write_text((notes.read_text() if notes.exists() else "") + f"night {i}\n")
            message = f"unrelated change {i}"
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", message)
        shas[i] = git(repo, "rev-parse", "HEAD")
    return shas


def labs(repo: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo), "COLUMNS": "220"}
    env.pop("LABS_ASV_SOURCE", None)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=15)
    parser.add_argument("--at", type=int, help="the commit that regresses (default: the middle one)")
    parser.add_argument("--books", default="20", help="n_plus_one's books parameter")
    parser.add_argument("--keep", type=Path, help="keep the scratch repository here")
    parser.add_argument("--reuse", action="store_true", help="analyse the kept repository again, no measuring")
    args = parser.parse_args()
    at = args.at or (args.commits + 1) // 2
    scratch = Path(tempfile.mkdtemp(prefix="labs-history-sim-")) if args.keep is None else args.keep
    repo = scratch / "repo"
    t0 = time.perf_counter()
    problems = []
    if args.reuse:
        bad = git(repo, "log", "--format=%H", "--grep", "the regression", "-1")
    else:
        if repo.exists():
            shutil.rmtree(repo)
        shas = make_history(repo, args.commits, at)
        bad = shas[at]
        filled = labs(repo, "asv", "backfill", f"HEAD~{args.commits}..HEAD", "-s", "n_plus_one",
                      "--param", f"books={args.books}", "--param", "catalog=60", "--machine", "history-sim")
        print(filled.stdout[-4000:])
        print(f"backfill: exit {filled.returncode}, {time.perf_counter() - t0:.0f} s")
        if filled.returncode != 0:
            problems.append("backfill failed: " + filled.stderr[-1500:])
    print(f"{args.commits} commits in {repo}; the regression is {bad[:8]}")

    hist = labs(repo, "history", "--all")
    print(hist.stdout[-6000:])
    steps = [line for line in hist.stdout.splitlines() if "│ step" in line]
    gated = [line for line in steps if re.search(r"· (ratio|queries|rows) ", line)]
    for metric in ("ratio", "queries", "time"):
        hit = [line for line in steps if f"select_related · {metric} " in line and bad[:7] in line]
        print(f"labs history: {metric} step of select_related at {bad[:7]}: {'yes' if hit else 'no'}")
        if not hit and metric != "time":
            problems.append(f"labs history named no {metric} step at {bad[:7]}")
    others = [line for line in gated if bad[:7] not in line]
    if others:
        problems.append("ratio/counter steps at other commits: " + " | ".join(others))
    for line in steps:
        if line not in gated and bad[:7] not in line:
            print("absolute time moved with the machine (not gated):", " ".join(line.replace("│", " ").split()))
    page = hist.stdout.strip().splitlines()[-1] if hist.stdout.strip() else ""
    html = Path(repo / page).read_text() if page and (repo / page).exists() else ""
    if bad[:7] not in html:
        problems.append(f"the dashboard ({page}) does not show {bad[:7]}")
    else:
        print(f"dashboard {page}: names {bad[:7]}")

    published = labs(repo, "asv", "publish", "--offline")
    if published.returncode != 0:
        problems.append("asv publish failed: " + published.stderr[-1500:])
    regressions = repo / ".asv" / "html" / "regressions.json"
    found = json.loads(regressions.read_text()) if regressions.exists() else {}
    index = repo / ".asv" / "html" / "index.json"
    to_hash = json.loads(index.read_text()).get("revision_to_hash", {}) if index.exists() else {}
    rows = [r for r in found.get("regressions", []) if "n_plus_one" in r[0]]
    # each row ends with its jumps: [revision before, revision after, old value, new value]
    named = [r for r in rows if any(to_hash.get(str(j[1])) == bad for j in r[-1])]
    for r in rows:
        print(f"asv step: {r[0]} at {', '.join(str(to_hash.get(str(j[1]), '?'))[:8] for j in r[-1])}")
    print(f"asv regressions.json: {len(rows)} n_plus_one entries, {len(named)} naming {bad[:8]}")
    if not named:
        problems.append(f"asv's step detection did not name {bad[:8]}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
