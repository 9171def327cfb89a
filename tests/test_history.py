"""History charts from stored runs; regressions marked the same way labs compare decides them."""
from __future__ import annotations

from dataclasses import replace

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import UsageError
from harness.results import history, store
from tests.test_compare import make_run


def _runs():
    runs = [make_run(f"2026010{i}T000000Z-n_plus_one-000{i}", seed=i) for i in range(1, 5)]
    runs.append(make_run("20260105T000000Z-n_plus_one-0005", seed=5, fast_factor=1.6))  # regression
    return [replace(r, started_at=f"2026-01-0{i + 1}T00:00:00+00:00", env={**r.env, "git_sha": f"{i:040x}"})
            for i, r in enumerate(runs)]


def test_build_series_and_marks():
    h = history.build("n_plus_one", "time", _runs())
    assert set(h.series) == {"books=10 · naive", "books=10 · prefetch"}
    assert len(h.labels) == 5
    assert h.marks["books=10 · prefetch"] == [False, False, False, False, True]
    assert not any(h.marks["books=10 · naive"])
    q = history.build("n_plus_one", "queries", _runs(), variant="prefetch")
    assert q.series == {"books=10 · prefetch": [2.0] * 5}


def test_unknown_metric_and_no_runs():
    with pytest.raises(UsageError, match="not found"):
        history.build("n_plus_one", "nope", _runs())
    with pytest.raises(UsageError, match="no complete runs"):
        history.build("n_plus_one", "time", [])


def test_cli_writes_png_and_self_contained_html(tmp_path):
    for r in _runs():
        store.save(r, tmp_path)
    store.save(replace(_runs()[0], run_id="20260109T000000Z-n_plus_one-dead", complete=False), tmp_path)
    res = CliRunner().invoke(app, ["history", "n_plus_one", "--metric", "ratio", "--results-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "5 runs" in res.output  # the incomplete run is left out
    png = tmp_path / "history" / "history-n_plus_one-ratio.png"
    page = (tmp_path / "history" / "history-n_plus_one-ratio.html").read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in page and "<script" not in page and "http" not in page.split("<body>")[1]
    bad = CliRunner().invoke(app, ["history", "n_plus_oen", "--results-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "did you mean n_plus_one" in bad.output
