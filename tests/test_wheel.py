"""The lab as users install tools: a built wheel in a fresh virtualenv outside the checkout, every
command typed from an empty directory elsewhere (nothing may depend on the source tree)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parents[1]


def _copy_sources(dest: Path) -> None:
    """The working tree's tracked and new files (what a commit would hold), without build output."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.fixture(scope="module")
def installed(tmp_path_factory, runtime_dir) -> dict:
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv = base / "src", base / "dist", base / "venv"
    _copy_sources(src)
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(src)], capture_output=True,
                           text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and checked.stdout.count("PASSED") == 2, checked.stdout + checked.stderr
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    wheel = next(dist.glob("*.whl"))
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                         timeout=1500)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]
    return {"labs": str(venv / "bin" / "labs"), "python": str(venv / "bin" / "python"), "wheel": wheel,
            "env": {**{k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}},
                    "LABS_RUNTIME_DIR": runtime_dir, "COLUMNS": "200"}}


def run(installed: dict, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([installed["labs"], *args], capture_output=True, text=True, cwd=cwd, env=installed["env"],
                          timeout=timeout)


def test_the_wheel_carries_what_the_lab_reads_at_run_time(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for needed in ("harness/infra/postgres/postgresql.conf", "harness/infra/docker-compose.yml",
                   "harness/infra/Dockerfile", "harness/infra/gunicorn/gunicorn.conf.py",
                   "harness/tools/templates/scenario.py.tmpl", "scenarios/caching.md",
                   "labs/bookstore/templates/bookstore/book_detail.html", "labs/workshop/originals/ex1_n_plus_one.py",
                   "harness/integrations/pytest_benchmark/conftest.py"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "integrations/"))]


def test_doctor_and_a_first_run_from_an_empty_directory(installed, tmp_path):
    doctor = run(installed, "doctor", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout[-3000:] + doctor.stderr[-2000:]
    assert "embedded stack boots" in doctor.stdout
    done = run(installed, "run", "n_plus_one", "--param", "books=3", "--param", "catalog=30", "--no-lesson",
               cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all checks passed" in done.stdout and len(list((tmp_path / "results").glob("*.json"))) == 1
    report = run(installed, "report", "latest", cwd=tmp_path)
    assert report.returncode == 0 and (tmp_path / report.stdout.strip()).exists()  # relative to where it ran


def test_workshop_in_the_participants_folder(installed, tmp_path):
    outside = run(installed, "workshop", "list", cwd=tmp_path)
    assert outside.returncode == 2 and "labs workshop init" in outside.stderr
    made = run(installed, "workshop", "init", "ws", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ws = tmp_path / "ws"
    assert (ws / "exercises" / "ex1_n_plus_one.py").exists() and (ws / "workshop_app" / "models.py").exists()
    start = run(installed, "workshop", "start", "1", cwd=ws / "exercises")  # any directory inside the folder
    assert start.returncode == 0 and "\n  ex1_n_plus_one.py\n" in start.stdout  # relative to where they stand
    start = run(installed, "workshop", "start", "1", cwd=ws)
    assert start.returncode == 0 and "\n  exercises/ex1_n_plus_one.py\n" in start.stdout
    check = run(installed, "check", "1", cwd=ws)
    assert check.returncode == 1, check.stdout[-3000:] + check.stderr[-2000:]
    assert "NOT YET" in check.stdout and "hint:" in check.stdout
    assert '"attempts": 1' in (ws / ".progress.json").read_text()


def test_a_new_scenario_runs_where_it_was_made(installed, tmp_path):
    made = run(installed, "new", "scenario", "mine", cwd=tmp_path)
    assert made.returncode == 0 and (tmp_path / "labs.toml").exists(), made.stderr
    done = run(installed, "run", "mine", "--no-chart", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "queries/row" in done.stdout


def test_a_project_with_its_own_labs_and_scenarios_packages(installed, tmp_path):
    """A Django project named `labs`, an app named `scenarios`: generic names the lab uses too."""
    files = {
        "labs.toml": 'scenario_paths = ["perf"]\ndjango_settings = "labs.settings"\npythonpath = ["."]\n',
        "labs/__init__.py": "",
        "labs/settings.py": textwrap.dedent('''
            SECRET_KEY = "x"
            INSTALLED_APPS = ["django.contrib.contenttypes", "scenarios"]
            DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "mine"}}
            USE_TZ = True
        '''),
        "scenarios/__init__.py": '"""The project\'s own app, named like the lab\'s package."""\n',
        "scenarios/helpers.py": "def squares(n):\n    return [i * i for i in range(n)]\n",
        "perf/squares.py": textwrap.dedent('''
            from harness.scenario import Case, Scenario, Variant, same_result_as


            def make(kind):
                def factory(ctx):
                    from scenarios.helpers import squares  # the project's `scenarios`, in its worker
                    if kind == "list":
                        return lambda: squares(300)
                    return lambda: [i ** 2 for i in range(300)]
                return factory


            SCENARIO = Scenario(
                name="squares", title="squares", requires=frozenset({"postgres"}),
                profiles={"quick": {}, "full": {}},
                cases=lambda p: [Case("c", {}, "list", (Variant("list", make("list")), Variant("pow", make("pow"))),
                                      (same_result_as("pow", "list"),))],
            )
        '''),
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    listed = run(installed, "list", cwd=tmp_path)
    assert listed.returncode == 0 and "squares" in listed.stdout and "n_plus_one" in listed.stdout, listed.stdout
    both = run(installed, "run", "squares", "n_plus_one", "--param", "books=3", "--param", "catalog=30",
               "--no-chart", "--no-lesson", cwd=tmp_path)
    assert both.returncode == 0, both.stdout[-3000:] + both.stderr[-3000:]
    assert "3 books" in both.stdout and "pow" in both.stdout
