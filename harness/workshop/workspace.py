"""Where a participant's exercises live.

`labs workshop init [DIR]` copies the exercises into a folder the participant owns — their
editor opens it, git can track it — with the originals `reset` restores and the Django app of
exercise 2 (models.py and its migrations, label `workshop`):

    DIR/perflab-workshop.toml   marks the folder (labs finds it from any directory inside)
    DIR/exercises/exN_*.py      what the participant edits
    DIR/workshop_app/           models.py + migrations/ (exercise 2 adds an index here)
    DIR/.originals/             what `labs workshop reset N` restores
    DIR/.progress.json          status, attempts, hints

`labs check N` then measures the code there. From a source checkout without such a folder, the
exercises in labs/workshop/ are used in place (the facilitator's layout).
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

MARKER = "perflab-workshop.toml"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
LAB_WORKSHOP = PACKAGE_ROOT / "labs" / "workshop"
"""The lab's own copy: originals, solutions, and (in a source tree) the facilitator's exercises."""


@dataclass(frozen=True)
class Workspace:
    root: Path
    in_repo: bool
    """True: labs/workshop of a source checkout (modules imported as labs.workshop.exercises.*)."""

    @property
    def exercises_dir(self) -> Path:
        return self.root / "exercises"

    @property
    def app_dir(self) -> Path:
        """The Django app of exercise 2 (models.py, migrations/)."""
        return self.root if self.in_repo else self.root / "workshop_app"

    @property
    def originals(self) -> Path:
        return self.root / "originals" if self.in_repo else self.root / ".originals"

    @property
    def progress(self) -> Path:
        if self.in_repo:
            return Path(os.environ.get("LABS_WORKSHOP_PROGRESS") or PACKAGE_ROOT / ".labs-workshop.json")
        return self.root / ".progress.json"

    def path_of(self, rel: str) -> Path:
        """An exercise file ('exercises/ex1_n_plus_one.py' or 'models.py') in this workspace."""
        return self.app_dir / rel if rel == "models.py" else self.root / rel

    def original_of(self, rel: str, number: int) -> Path:
        name = f"ex{number}_models.py" if rel == "models.py" else Path(rel).name
        return self.originals / name

    def module_of(self, rel: str) -> str:
        """The importable name of an exercise module (the participant's folder goes on sys.path, so
        processes a solution starts — forkserver pools — import it by that name too)."""
        stem = Path(rel).stem
        if self.in_repo:
            return f"labs.workshop.exercises.{stem}"
        folder = str(self.exercises_dir)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        return stem

    def activate(self) -> None:
        """Make Django load this workspace's exercise-2 app (before Django is set up)."""
        if self.in_repo:
            os.environ.pop("LABS_WORKSHOP_APP", None)
        else:
            os.environ["LABS_WORKSHOP_APP"] = str(self.app_dir)

    def display(self, rel: str) -> str:
        path = self.path_of(rel)
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)


def find(start: Path | None = None) -> Workspace:
    """The workshop folder this directory is in (its perflab-workshop.toml, from here upwards); else
    the exercises in place in a source checkout; else a clear error saying how to make one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_file():
            return Workspace(folder, in_repo=False)
    if (PACKAGE_ROOT / "pyproject.toml").is_file() and (LAB_WORKSHOP / "exercises").is_dir():
        return Workspace(LAB_WORKSHOP, in_repo=True)
    raise UsageError("no workshop folder here",
                     hint="labs workshop init [DIR] copies the exercises into a folder of yours; then cd into it")


def init(target: Path) -> Workspace:
    """Copy the exercises, the exercise-2 app and the originals into `target` (new or empty)."""
    target = target.resolve()
    if (target / MARKER).exists():
        raise UsageError(f"{target} is a workshop folder already", hint=f"cd {target} && labs workshop list")
    if target.exists() and any(p for p in target.iterdir() if not p.name.startswith(".")):
        raise UsageError(f"{target} is not empty: not copying the exercises over your files",
                         hint="give a new folder: labs workshop init perflab-workshop")
    src = LAB_WORKSHOP / "originals"
    ws = Workspace(target, in_repo=False)
    ws.exercises_dir.mkdir(parents=True, exist_ok=True)
    ws.originals.mkdir(parents=True, exist_ok=True)
    for original in sorted(src.glob("ex*_*.py")):
        if original.name.endswith("_models.py"):
            continue
        text = original.read_text().replace("from labs.workshop.models import", "from workshop_app.models import")
        (ws.exercises_dir / original.name).write_text(text)
        (ws.originals / original.name).write_text(text)
    app = ws.app_dir
    (app / "migrations").mkdir(parents=True, exist_ok=True)
    (app / "__init__.py").write_text('"""The Django app of exercise 2 (label `workshop`): add the index in models.py."""\n')
    (app / "apps.py").write_text('from django.apps import AppConfig\n\n\nclass WorkshopConfig(AppConfig):\n'
                                 '    name = "workshop_app"\n    label = "workshop"\n'
                                 '    default_auto_field = "django.db.models.BigAutoField"\n')
    models = (src / "ex2_models.py").read_text()
    (app / "models.py").write_text(models)
    (ws.originals / "ex2_models.py").write_text(models)
    (app / "migrations" / "__init__.py").write_text("")
    shutil.copy(LAB_WORKSHOP / "migrations" / "0001_initial.py", app / "migrations" / "0001_initial.py")
    (target / MARKER).write_text("# A Perf Lab workshop folder: `labs workshop list` and `labs check N` work from here.\n")
    (target / "README.md").write_text(
        "# Perf Lab workshop\n\n"
        "- `labs workshop list` — the exercises and your progress\n"
        "- `labs workshop start 1` — what to fix, in `exercises/`\n"
        "- `labs check 1` — measures your code against the original on a real stack\n"
        "- `labs workshop hint 1`, `labs workshop reset 1`\n\n"
        "Exercise 2 adds an index to `workshop_app/models.py`; `labs workshop makemigrations` writes its "
        "migration into `workshop_app/migrations/`.\n")
    (target / ".gitignore").write_text(".progress.json\n__pycache__/\n*.bak-*\n")
    return ws
