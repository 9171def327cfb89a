"""The asv suite is generated from the registry, and asv really records it (existing env)."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import registry

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


@pytest.mark.stack
def test_asv_run_records_the_harness_numbers(tmp_path, runtime_dir):
    if not shutil.which("asv"):
        if os.environ.get("CI"):
            pytest.fail("asv is not installed, but CI must run this check")
        pytest.skip("asv not installed")
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    # the clone has the committed tree; bring the working tree's suite so uncommitted edits are tested
    shutil.copy(ROOT / "benchmarks" / "labs_suite.py", repo / "benchmarks" / "labs_suite.py")
    shutil.copy(ROOT / "asv.conf.json", repo / "asv.conf.json")
    env = {**os.environ, "LABS_ASV_SCENARIOS": "n_plus_one", "LABS_ASV_PARAMS": "books=3,6;catalog=30",
           "LABS_RUNTIME_DIR": runtime_dir, "PYTHONPATH": str(ROOT)}
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    subprocess.run(["asv", "machine", "--yes", "--machine", "ci-test"], cwd=repo, env=env, check=True,
                   capture_output=True)
    done = subprocess.run(["asv", "run", "--python=same", "--set-commit-hash", sha, "--machine", "ci-test",
                           "--show-stderr"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = [p for p in (repo / ".asv" / "results" / "ci-test").glob("*.json") if p.name != "machine.json"]
    assert files, done.stdout[-2000:]
    data = json.loads(files[0].read_text())
    results = data["results"]
    key = "labs_suite.Scenario_n_plus_one.track_queries"
    assert key in results, sorted(results)
    values = results[key][0]
    # params order: case x variant; naive at 3 books runs 1 + 2*3 queries, values_agg 1
    cases, variants = results[key][1]
    grid = dict(zip([(c, v) for c in cases for v in variants], values))
    assert grid[("'books=3'", "'naive'")] == 7
    assert grid[("'books=6'", "'values_agg'")] == 1
    published = subprocess.run(["asv", "publish"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert published.returncode == 0, published.stderr[-2000:]
    site = repo / ".asv" / "html"
    assert (site / "index.html").exists()
    _offline_site_renders(site)


def _offline_site_renders(site: Path) -> None:
    """Vendor the CDN scripts, then let headless Chromium (which has no internet here) render it."""
    import re
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from harness import asvsite
    from tests.test_see_why import dump_dom

    if not shutil.which("npm"):
        if os.environ.get("CI"):
            pytest.fail("npm is needed to vendor the asv site's scripts")
        pytest.skip("npm not installed")
    written = asvsite.vendor(site)
    assert "jquery-3.3.1.min.js" in written and "bootstrap.min.css" in written
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
