"""Shared fixtures: one real embedded stack (PostgreSQL + Valkey [+ memcached]) per test session."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from harness.measure.runner import Budget

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
