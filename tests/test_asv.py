"""The asv suite is generated from the registry, and asv really records it (existing env)."""
from __future__ import annotations

import importlib
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.project import registry

ROOT = Path(__file__).resolve().parents[1]


def test_suite_lists_every_scenario_and_variant(monkeypatch):
    monkeypatch.delenv("LABS_ASV_SCENARIOS", raising=False)
    sys.path.insert(0, str(ROOT))
    try:
        suite = importlib.reload(importlib.import_module("benchmarks.labs_suite"))
    finally:
        sys.path.remove(str(ROOT))
    for name in registry.names():
        cls = getattr(suite, f"Scenario_{name}")
        sc = registry.get(name)
        cases, variants = cls.params
        assert variants == sc.variant_names("quick")
        assert cases == [c.name for c in sc.cases(sc.params_for("quick"))]
        for track in ("track_time", "track_ratio", "track_queries"):
            assert callable(getattr(cls, track)) and getattr(cls, track).unit


def _require_asv() -> None:
    if not shutil.which("asv"):
        if os.environ.get("CI"):
            pytest.fail("asv is not installed, but CI must run this check")
        pytest.skip("asv not installed")


@pytest.mark.stack
def test_asv_run_records_the_harness_numbers(tmp_path, runtime_dir):
    _require_asv()
    repo = tmp_path / "repo"
    _clone_with_working_tree(repo)  # uncommitted edits of the suite are what gets tested
    env = {**os.environ, "LABS_ASV_SCENARIOS": "n_plus_one", "LABS_ASV_PARAMS": "books=3,6;catalog=30",
           "LABS_RUNTIME_DIR": runtime_dir, "PYTHONPATH": str(repo)}
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    subprocess.run(["asv", "machine", "--yes", "--machine", "ci-test"], cwd=repo, env=env, check=True,
                   capture_output=True)
    done = subprocess.run(["asv", "run", "--python=same", "--set-commit-hash", sha, "--machine", "ci-test",
                           "--show-stderr"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = [p for p in (repo / ".asv" / "results" / "ci-test").glob("*.json") if p.name != "machine.json"]
    assert files, done.stdout[-2000:]
    assert "labs_suite.Scenario_n_plus_one.track_queries" in json.loads(files[0].read_text())["results"]
    # params order: case x variant; naive at 3 books runs 1 + 2*3 queries, values_agg 1
    grid = _asv_grid(repo, sha, "track_queries")
    assert grid[("books=3", "naive")] == 7
    assert grid[("books=6", "values_agg")] == 1
    from tests.helpers import need

    need("npm", bool(shutil.which("npm")), "the asv site's scripts are vendored from npm")
    # as a user types it: asv publish, with the CDN scripts vendored so the page opens offline
    published = subprocess.run([sys.executable, "-m", "harness", "asv", "publish", "--offline"], cwd=repo, env=env,
                               capture_output=True, text=True, timeout=600)
    assert published.returncode == 0, published.stdout[-2000:] + published.stderr[-2000:]
    site = repo / ".asv" / "html"
    assert published.stdout.strip().endswith(str(site / "index.html")), published.stdout
    assert (site / "vendor" / "jquery-3.3.1.min.js").exists() and (site / "vendor" / "bootstrap.min.css").exists()
    _offline_site_renders(site)


def _offline_site_renders(site: Path) -> None:
    """Headless Chromium (which has no internet here) renders the vendored site."""
    import re
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from tests.test_see_why import dump_dom

    index = (site / "index.html").read_text()
    assert not re.search(r'(src|href)="https://[^"]+\.(js|css)"', index)
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dom, log = dump_dom(f"http://127.0.0.1:{server.server_address[1]}/index.html")
    finally:
        server.shutdown()
        server.server_close()
    assert "Scenario_n_plus_one" in dom  # asv's own JavaScript ran and built the benchmark grid
    assert "Uncaught" not in log


def _clone_with_working_tree(dest: Path) -> None:
    """A throwaway repo whose HEAD is this working tree (uncommitted edits included)."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "checkout", "-q", "-B", "main"], cwd=dest, check=True)  # asv.conf.json's branch
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    _commit(dest, "the working tree under test")


def _commit(repo: Path, message: str) -> str:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], cwd=repo, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def _asv_grid(repo: Path, sha: str, benchmark: str) -> dict:
    (path,) = (repo / ".asv" / "results" / "ci-test").glob(f"{sha[:8]}-*.json")
    entry = json.loads(path.read_text())["results"][f"labs_suite.Scenario_n_plus_one.{benchmark}"]
    cases, variants = entry[1]
    keys = [(c.strip("'"), v.strip("'")) for c in cases for v in variants]
    # asv stores a failed benchmark's whole grid as one null
    return dict(zip(keys, entry[0] if entry[0] is not None else [None] * len(keys)))


@pytest.mark.stack
def test_asv_backfill_measures_each_commit_with_its_own_code(tmp_path, runtime_dir):
    """Two commits, the second drops select_related (and, as a careless change would, updates the
    expected query count so the check still passes: asv charts only verified runs): asv must record
    1+n queries for the first and 1+2n for the second - only possible if each commit's own scenario
    code ran."""
    _require_asv()
    repo = tmp_path / "repo"
    _clone_with_working_tree(repo)
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    source = repo / "scenarios" / "n_plus_one.py"
    text = source.read_text()
    assert 'Book.objects.select_related("publisher").order_by("id")[:n]]' in text
    changed = text.replace('Book.objects.select_related("publisher").order_by("id")[:n]]',
                           'Book.objects.order_by("id")[:n]]', 1)
    assert '"select_related": (select_related, lambda n: 1 + n, False)' in changed
    source.write_text(changed.replace('"select_related": (select_related, lambda n: 1 + n, False)',
                                      '"select_related": (select_related, lambda n: 1 + 2 * n, False)'))
    second = _commit(repo, "drop select_related (a regression)")
    # a third commit breaks a check outright: a fast wrong answer never becomes a point on the chart
    source.write_text(source.read_text().replace('"values_agg": (values_agg, lambda n: 1, True)',
                                                 '"values_agg": (values_agg, lambda n: 2, True)'))
    third = _commit(repo, "expect two queries from values_agg (a check that fails)")
    env = {**os.environ, "LABS_RUNTIME_DIR": runtime_dir, "PYTHONPATH": str(repo)}
    env.pop("LABS_ASV_SOURCE", None)
    argv = [sys.executable, "-m", "harness", "asv", "backfill", "HEAD~3..HEAD", "--scenario", "n_plus_one",
            "--param", "books=3,6", "--param", "catalog=30", "--machine", "ci-test"]
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # one commit failed
    assert "Traceback" not in done.stdout + done.stderr
    rows = _status_rows(done.stdout)
    assert [rows.get(sha[:8]) for sha in (first, second, third)] == ["recorded", "recorded", "failed"], done.stdout
    assert not list((repo / ".asv" / "results" / "ci-test").glob(f"{third[:8]}-*.json")) or \
        all(v is None for v in _asv_grid(repo, third, "track_queries").values())
    before, after = _asv_grid(repo, first, "track_queries"), _asv_grid(repo, second, "track_queries")
    assert before[("books=3", "select_related")] == 1 + 3 and before[("books=6", "select_related")] == 1 + 6
    assert after[("books=3", "select_related")] == 1 + 2 * 3 and after[("books=6", "select_related")] == 1 + 2 * 6
    assert before[("books=3", "naive")] == after[("books=3", "naive")] == 7  # untouched variants agree
    assert _asv_grid(repo, second, "track_time")[("books=3", "naive")] > 0
    # the published history has the two commits in order, the regression as a step
    published = subprocess.run([sys.executable, "-m", "harness", "asv", "publish"], cwd=repo, env=env,
                               capture_output=True, text=True, timeout=300)
    assert published.returncode == 0, published.stderr[-2000:]
    (graph,) = (repo / ".asv" / "html" / "graphs").glob(
        "branch-main/machine-ci-test/*/labs_suite.Scenario_n_plus_one.track_queries.json")
    points = sorted(json.loads(graph.read_text()))
    column = list(before).index(("books=3", "select_related"))
    charted = [values[column] for _, values in points if values and values[column] is not None]
    assert charted == [4, 7]  # the failed commit is no point on the chart
    # no worktree is left behind, and a second pass skips what asv already holds
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1, worktrees
    again = subprocess.run(argv[:5] + ["HEAD~3..HEAD~1"] + argv[6:], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert list(_status_rows(again.stdout).values()) == ["skipped", "skipped"], again.stdout[-2000:]


def _status_rows(table: str) -> dict[str, str]:
    """commit -> status from the backfill's table (first and third cell of each commit row)."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) >= 3 and re.fullmatch(r"[0-9a-f]{8}", cells[0]):
            rows[cells[0]] = cells[2]
    return rows


@pytest.fixture
def seven_commits(tmp_path) -> Path:
    repo = tmp_path / "seven"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for i in range(7):
        _commit(repo, f"commit {i}")
    return repo


@pytest.mark.parametrize("spec, message", [
    ("nonsense..HEAD", "git does not know the commit range"),
    ("HEAD..HEAD", "holds no commits"),
    ("--upload-pack=x", "bad commit range"),
    ("", "bad commit range"),
])
def test_asv_backfill_bad_ranges_are_clear_errors(seven_commits, spec, message):
    from harness.errors import UsageError
    from harness.present import asvsite

    with pytest.raises(UsageError, match=message):
        asvsite.commits(seven_commits, spec)


def test_asv_backfill_range_every_and_limit(seven_commits):
    from harness.errors import UsageError
    from harness.present import asvsite

    all_six = asvsite.commits(seven_commits, "HEAD~6..HEAD")
    assert [c.subject for c in all_six] == [f"commit {i}" for i in range(1, 7)]  # oldest first, A excluded
    assert [c.subject for c in asvsite.commits(seven_commits, "HEAD~6..HEAD", every=4)] == ["commit 2", "commit 6"]
    assert [c.subject for c in asvsite.commits(seven_commits, "HEAD~3")] == ["commit 3"]
    with pytest.raises(UsageError, match="at most 2"):
        asvsite.commits(seven_commits, "HEAD~6..HEAD", limit=2)


@pytest.mark.stack
def test_asv_backfill_interrupted_leaves_nothing_behind(tmp_path, runtime_dir):
    from tests.test_faults import _alive, _descendants, _wait_for

    _require_asv()
    repo = tmp_path / "repo"
    _clone_with_working_tree(repo)
    env = {**os.environ, "LABS_RUNTIME_DIR": runtime_dir, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "asv", "backfill", "HEAD~1..HEAD", "-s", "n_plus_one",
                             "--param", "books=3,6", "--param", "catalog=30", "--machine", "ci-test"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _wait_for(proc, "valkey-server", timeout_s=120)  # asv → benchmark runner → labs run → its stack
    seen = {p.pid for p in _descendants(proc.pid)}
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in out + err
    deadline = time.monotonic() + 5
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(seen), "asv, labs run or a server outlived the interrupt"
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1, worktrees
