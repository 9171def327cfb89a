"""Interop with pytest-benchmark: export layout readable by `pytest-benchmark compare`, and the
scenarios running inside `pytest --benchmark-only` with checks enforced."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.present import export
from harness.results import store

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def test_export_layout_is_read_by_pytest_benchmark(tmp_path):
    data = export.to_pytest_benchmark(store.load(FIXTURES / "result-schema1.json"))
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(data)
    first = data["benchmarks"][0]
    assert first["stats"]["rounds"] == len(first["stats"]["data"]) and first["group"].startswith("n_plus_one:")
    path = tmp_path / "0001_export.json"
    path.write_text(json.dumps(data))
    exe = shutil.which("pytest-benchmark")
    if exe is None:
        pytest.skip("pytest-benchmark not installed")
    done = subprocess.run([exe, "compare", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "naive[books=10]" in done.stdout


@pytest.mark.stack
def test_scenarios_run_inside_pytest_benchmark(tmp_path, runtime_dir):
    out = tmp_path / "bench.json"
    env = {**os.environ, "LABS_BENCH_SCENARIOS": "n_plus_one", "LABS_BENCH_PARAMS": "books=3,5;catalog=30",
           "LABS_BENCH_ROUNDS": "3", "LABS_RUNTIME_DIR": runtime_dir}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
                           f"--benchmark-json={out}", str(ROOT / "harness" / "integrations" / "pytest_benchmark")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    benches = json.loads(out.read_text())["benchmarks"]
    assert len(benches) == 10  # 2 cases × 5 variants
    naive3 = next(b for b in benches if b["extra_info"]["variant"] == "naive" and b["extra_info"]["case"] == "books=3")
    assert naive3["extra_info"]["counters"]["queries"] == 7
