"""Reports rendered for real in headless Chromium; explain, profile and serve on the real stack."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import time
from pathlib import Path

import psutil
import pytest

from harness.present import html as htmlreport
from harness.results import store
from harness.stack import procs

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, but CI must render the pages")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return exe


def dump_dom(url: str) -> tuple[str, str]:
    profile = tempfile.mkdtemp(prefix="labs-chromium-")
    try:
        done = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--enable-logging=stderr", "--v=0",
             "--dump-dom", url], capture_output=True, text=True, timeout=90)
        return done.stdout, done.stderr
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_html_report_renders_with_its_charts(tmp_path):
    result = store.load(FIXTURES / "result-schema1.json")
    page = tmp_path / "report.html"
    page.write_text(htmlreport.to_html(result, "# Lesson\n\n- **bold** point\n"))
    text = page.read_text()
    # offline: nothing is fetched (namespace URIs inside the SVGs are names, not requests)
    assert "<script" not in text and not re.search(r'(src|href)=["\']https?://', text)
    dom, log = dump_dom(page.as_uri())
    assert dom.count("<svg") == 1 + len(result.cases)  # the scaling chart + one per case
    assert dom.count('id="speed-bars') >= len(result.cases)  # matplotlib's gid: the bars are real elements
    assert 'id="series-naive' in dom and "<table>" in dom and "What this run shows" in dom
    assert "Uncaught" not in log and "SyntaxError" not in log


def test_markdown_report_golden():
    result = store.load(FIXTURES / "result-schema1.json")
    text = htmlreport.to_markdown(result)
    from tests.helpers import golden

    golden(GOLDEN / "report.md", text)


def test_report_cli_formats(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    shutil.copy(FIXTURES / "result-schema1.json", tmp_path / "20260101T000000Z-n_plus_one-aaaa.json")
    runner = CliRunner()
    for fmt, magic in (("html", b"<!doctype html>"), ("md", b"## n_plus_one"), ("png", b"\x89PNG")):
        res = runner.invoke(app, ["report", "latest", "--format", fmt, "--results-dir", str(tmp_path)])
        assert res.exit_code == 0, res.output
        assert Path(res.output.strip().replace("\n", "")).read_bytes().startswith(magic)
    bad = runner.invoke(app, ["report", "latest", "--format", "pdf", "--results-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown format" in bad.output


def _labs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.stack
def test_explain_shows_the_plan_tree(runtime_dir):
    done = _labs("explain", "n_plus_one", "--variant", "prefetch_related", "--case", "books=10",
                 "--param", "catalog=30", "--param", "books=10")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bookstore_book_tags" in done.stdout and "ms self" in done.stdout and "buffers hit" in done.stdout
    bad = _labs("explain", "n_plus_one", "--variant", "prefetch_relatd")
    assert bad.returncode == 2 and "did you mean prefetch_related?" in bad.stderr


@pytest.mark.stack
def test_profile_names_the_variant_function(tmp_path, runtime_dir):
    done = _labs("profile", "n_plus_one", "--variant", "naive", "--case", "books=5", "--seconds", "0.5",
                 "--param", "books=5", "--param", "catalog=30", "--out-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    html_file = next(tmp_path.glob("*.html"))
    assert "naive" in html_file.read_text()  # pyinstrument saw scenarios.n_plus_one.naive
    assert next(tmp_path.glob("*.speedscope.json")).read_text().startswith("{")
    sql = next(tmp_path.glob("*.sql.txt")).read_text()
    assert re.search(r"ms total\s+\d+ calls", sql) and "bookstore_tag" in sql


@pytest.mark.stack
def test_serve_pages_render_and_stop_cleanly(runtime_dir):
    port = procs.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not procs.port_open(port):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        kids = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        printed = proc.stdout.readline()
        token = re.search(r"labs-token=([\w-]+)", printed).group(1)
        # without the printed token, or under another Host name (DNS rebinding), nothing is served
        for headers in ({}, {"Host": "rebound.example"}):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/silk/", headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            refused.value.close()
            assert refused.value.code in {400, 403}
        dom, _ = dump_dom(f"http://127.0.0.1:{port}/books/1/?labs-token={token}")
        assert "djDebug" in dom  # the debug toolbar is on the page
        dom, log = dump_dom(f"http://127.0.0.1:{port}/silk/?labs-token={token}")
        assert "silk" in dom.lower() and "/books/1/" in dom  # silk recorded the request above
        assert "Uncaught" not in log
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    time.sleep(0.5)
    assert not [p for p in kids if procs.pid_alive(p)]


def test_serve_refuses_a_public_bind():
    done = _labs("serve", "--host", "0.0.0.0")
    assert done.returncode == 2 and "loopback" in done.stderr
