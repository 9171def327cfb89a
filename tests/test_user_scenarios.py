"""Your own code in the lab: scenarios found through labs.toml, a separate Django project measured
on the embedded stack (its real database untouched), broken files reported, the scaffold runnable."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.project import registry

ROOT = Path(__file__).resolve().parents[1]
PROJECT = Path(__file__).parent / "userproj"


def _labs(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def in_project(monkeypatch):
    monkeypatch.chdir(PROJECT)
    registry._discover.cache_clear()
    yield
    registry._discover.cache_clear()
    for mod in [m for m in sys.modules if m.startswith("labs_user_scenarios.")]:
        del sys.modules[mod]


def test_discovery_through_labs_toml(in_project):
    reg = registry.registry()
    assert reg.config.django_settings == "shopproj.settings"
    assert registry.origin("product_list").endswith("perf/product_list.py")
    assert {"n_plus_one", "product_list", "broken"} <= set(registry.names())
    with pytest.raises(registry.ScenarioLoadError, match=r"perf/broken\.py:4: importing it raised ModuleNotFoundError"):
        registry.get("broken")
    # `all` skips the broken one, says so, and keeps the others
    chosen = registry.resolve(["all"])
    assert "product_list" in [s.name for s in chosen] and "broken" not in [s.name for s in chosen]
    assert any("skipped broken" in p for p in reg.problems)


def test_name_clash_is_reported(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "n_plus_one.py").write_text("SCENARIO = None\n")
    (tmp_path / "labs.toml").write_text('scenario_paths = ["mine", "missing"]\n')
    monkeypatch.chdir(tmp_path)
    registry._discover.cache_clear()
    try:
        problems = registry.registry().problems
        assert any("name clash" in p and "n_plus_one" in p for p in problems)
        assert any("is not a directory" in p for p in problems)
        assert registry.origin("n_plus_one") == "built-in"
    finally:
        registry._discover.cache_clear()


def test_entry_point_scenarios_load():
    ep = importlib.metadata.EntryPoint("n_plus_one", "scenarios.n_plus_one:SCENARIO", registry.ENTRY_POINT_GROUP)
    assert registry._from_entry_point(ep).load().name == "n_plus_one"
    bad = importlib.metadata.EntryPoint("ghost", "no_such_pack:SCENARIO", registry.ENTRY_POINT_GROUP)
    with pytest.raises(registry.ScenarioLoadError, match="entry point ghost"):
        registry._from_entry_point(bad).load()


@pytest.mark.stack
def test_user_project_measured_on_the_stack(tmp_path, runtime_dir):
    listed = _labs("list", cwd=PROJECT)
    assert listed.returncode == 0 and "product_list" in listed.stdout and "cannot load" in listed.stdout
    done = _labs("run", "product_list", "--results-dir", str(tmp_path), "--no-chart", cwd=PROJECT)
    # the current view is over its query budget: reported, exit 1, the fixed one passes
    assert done.returncode == 1, done.stderr[-2000:]
    assert "current: queries <= 1" in done.stdout and "Traceback" not in done.stderr
    (result_file,) = tmp_path.glob("*.json")
    data = json.loads(result_file.read_text())
    case = data["cases"][0]
    assert case["variants"]["current"]["counters"]["queries"] == 101
    assert case["variants"]["fixed"]["counters"]["queries"] == 1
    assert data["env"]["django_settings"] == "shopproj.settings"
    assert "do-not-use" not in result_file.read_text()
    broken = _labs("run", "broken", "--results-dir", str(tmp_path), cwd=PROJECT)
    assert broken.returncode == 2 and "perf/broken.py:4" in broken.stderr and "Traceback" not in broken.stderr


@pytest.mark.stack
def test_scaffold_runs_as_generated(tmp_path, runtime_dir):
    made = _labs("new", "scenario", "my_query", "--dir", "perf_scenarios", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "labs.toml").read_text().count("perf_scenarios") == 1
    for name in ("my_query.py", "my_query.md", "test_my_query.py"):
        assert (tmp_path / "perf_scenarios" / name).exists()
    run = _labs("run", "my_query", "--no-chart", "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "fast" in run.stdout and "all checks passed" in run.stdout
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "perf_scenarios/test_my_query.py"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert test.returncode == 0, test.stdout[-2000:]
    again = _labs("new", "scenario", "my_query", "--dir", "perf_scenarios", cwd=tmp_path)
    assert again.returncode == 2 and "exists already" in again.stderr
    bad = _labs("new", "scenario", "My-Query", cwd=tmp_path)
    assert bad.returncode == 2 and "bad scenario name" in bad.stderr


@pytest.mark.parametrize("text, said", [
    ("django_settings = 42\n", "django_settings must be a dotted module name"),
    ('pythonpath = "src"\n', 'pythonpath = ["src"]'),
    ('scenario_paths = ["perf", 3]\n', "scenario_paths must be a list of directories"),
    ('django_setings = "a.settings"\n', "did you mean 'django_settings'"),
])
def test_a_config_mistake_is_a_clear_error(tmp_path, text, said):
    (tmp_path / "labs.toml").write_text(text)
    done = subprocess.run([sys.executable, "-m", "harness", "list"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
