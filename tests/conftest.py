"""Shared fixtures: one real embedded stack (PostgreSQL + Valkey [+ memcached]) per test session."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from harness.measure.runner import Budget

# One terminal width for every test and the `labs` processes tests start, whatever runs pytest (a
# terminal, CI, an xdist worker): tables and messages are not cut or wrapped differently per runner.
os.environ["COLUMNS"] = "200"

TINY = Budget(min_rounds=3, max_rounds=5, case_s=0.05, sample_s=0.0005, warmup_s=0.0)
"""Budget for tests: they assert deterministic facts, so timing only needs to run, not to be precise."""


@pytest.fixture(scope="session", autouse=True)
def runtime_dir():
    """A private runtime dir, so tests never touch (or attach to) the user's warm stack.

    Not under pytest's tmp_path: that is mode 0700 below /tmp/pytest-of-root, which the
    unprivileged PostgreSQL user cannot traverse when tests run as root.
    """
    path = tempfile.mkdtemp(prefix="perflab-test-")
    old = os.environ.get("LABS_RUNTIME_DIR")
    os.environ["LABS_RUNTIME_DIR"] = path
    yield path
    if old is None:
        os.environ.pop("LABS_RUNTIME_DIR", None)
    else:
        os.environ["LABS_RUNTIME_DIR"] = old
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(runtime_dir):
    """A temporary embedded stack, Django configured for it and migrated."""
    from harness.project import djangoenv
    from harness.stack import provider

    with provider("embedded").open() as info:
        assert not info.warm
        djangoenv.setup(info)
        yield info


@pytest.fixture(scope="session")
def tiny_budget() -> Budget:
    return TINY


# -- a failing test explains itself: the logs of the servers it ran are attached to its report ----------
LOG_TAIL = 40


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    import time

    item.stash[_STARTED] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for path, tail in recent_logs(item):
        report.sections.append((f"log {path} (last {LOG_TAIL} lines)", tail))


def recent_logs(item, limit: int = 8) -> list[tuple[str, str]]:
    """Server logs (PostgreSQL, Valkey, Gunicorn, Locust, PgBouncer, workers) written since the test
    began: under the runtime dir and the test's own tmp_path."""
    from pathlib import Path

    started = item.stash.get(_STARTED, 0.0)
    roots = [Path(p) for p in (os.environ.get("LABS_RUNTIME_DIR"), item.funcargs.get("tmp_path")) if p]
    found = []
    for root in roots:
        if not Path(root).is_dir():
            continue
        for path in Path(root).rglob("*.log"):
            try:
                if path.stat().st_mtime >= started - 1:
                    found.append(path)
            except OSError:
                continue
    out = []
    for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:limit]:
        try:
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
        except OSError:
            continue
        if lines:
            out.append((str(path), "\n".join(lines)))
    return out


_STARTED = pytest.StashKey[float]()


# -- no subprocess handle left behind: a leaked one fails the run ------------------------------------
@pytest.fixture(scope="session", autouse=True)
def no_leaked_handles():
    """Popen objects still running when they are garbage collected warn (ResourceWarning) at exit,
    where no test sees it. Collect them when the session's tests are done, with the warnings
    recorded: any is an error (of the last test's teardown; with pytest-xdist, of each worker's)."""
    yield
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    if leaks:
        pytest.fail("leaked subprocess handles / files (ResourceWarning):\n  " + "\n  ".join(leaks[:20]))
