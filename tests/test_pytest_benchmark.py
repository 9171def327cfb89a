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
    from tests.helpers import need

    need("pytest-benchmark", exe is not None, "pip install -e '.[test]'")
    done = subprocess.run([exe, "compare", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "naive[books=10]" in done.stdout


def _outside_xdist() -> dict[str, str]:
    """This environment without pytest-xdist's worker variables: pytest-benchmark, seeing them,
    would think it runs inside a worker and disable itself."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}


@pytest.mark.stack
def test_scenarios_run_inside_pytest_benchmark(tmp_path, runtime_dir):
    out = tmp_path / "bench.json"
    env = {**_outside_xdist(), "LABS_BENCH_SCENARIOS": "n_plus_one", "LABS_BENCH_PARAMS": "books=3,5;catalog=30",
           "LABS_BENCH_ROUNDS": "3", "LABS_RUNTIME_DIR": runtime_dir}
    # -o addopts=: not this repository's test options (two xdist workers, pytest-benchmark off)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "--benchmark-only",
                           f"--benchmark-json={out}", str(ROOT / "harness" / "integrations" / "pytest_benchmark")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    benches = json.loads(out.read_text())["benchmarks"]
    assert len(benches) == 10  # 2 cases × 5 variants
    naive3 = next(b for b in benches if b["extra_info"]["variant"] == "naive" and b["extra_info"]["case"] == "books=3")
    assert naive3["extra_info"]["counters"]["queries"] == 7


WRONG = '''from harness.scenario import Case, Scenario, Variant, same_result_as

SCENARIO = Scenario(
    name="wrongish", title="one right, one wrong", requires=frozenset({"postgres"}),
    profiles={"quick": {}, "full": {}},
    cases=lambda p: [Case("c", {}, "right", (Variant("right", lambda ctx: lambda: [1, 2, 3]),
                                             Variant("wrong", lambda ctx: lambda: [1, 2, 4]),
                                             Variant("also_right", lambda ctx: lambda: [1, 2, 3])),
                          (same_result_as("wrong", "right"), same_result_as("also_right", "right")))],
)
'''


@pytest.mark.stack
def test_pytest_benchmark_refuses_to_time_a_wrong_variant(tmp_path, runtime_dir):
    (tmp_path / "perf").mkdir()
    (tmp_path / "perf" / "wrongish.py").write_text(WRONG)
    (tmp_path / "labs.toml").write_text('scenario_paths = ["perf"]\n')
    out = tmp_path / "bench.json"
    env = {**_outside_xdist(), "LABS_BENCH_SCENARIOS": "wrongish", "LABS_BENCH_ROUNDS": "3",
           "LABS_RUNTIME_DIR": runtime_dir}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
                           f"--benchmark-json={out}", "--pyargs", "harness.integrations.pytest_benchmark"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 failed, 2 passed" in done.stdout, done.stdout[-3000:]
    assert "same result as right" in done.stdout and "unit 0: $[2]: 4 != 3" in done.stdout
    timed = {b["extra_info"]["variant"] for b in json.loads(out.read_text())["benchmarks"]}
    assert timed == {"right", "also_right"}  # the wrong variant was never timed
