"""Run the lab's scenarios inside `pytest --benchmark-only` (pytest-benchmark), for teams that
already collect pytest-benchmark JSON (or feed it to Bencher). The checks still apply: a variant
whose answer or query count is wrong fails its test before it is timed.

    pytest --pyargs harness.integrations.pytest_benchmark --benchmark-only --benchmark-json=bench.json
    LABS_BENCH_SCENARIOS=n_plus_one LABS_BENCH_PARAMS="books=10,50" pytest --pyargs harness.integrations.pytest_benchmark ...

pytest-benchmark times one variant after another, not interleaved: for regression gating prefer
`labs ci`, whose paired ratios are far less noisy.
"""
from __future__ import annotations

import os
import tempfile

import pytest


@pytest.fixture(scope="session")
def lab_stack():
    from harness.project import djangoenv
    from harness.stack import provider

    os.environ.setdefault("LABS_RUNTIME_DIR", tempfile.mkdtemp(prefix="perflab-bench-"))
    with provider(os.environ.get("LABS_BENCH_STACK", "embedded")).open() as info:
        djangoenv.setup(info)
        yield info


@pytest.fixture(scope="session")
def lab_shared(lab_stack):
    """Each scenario's setup, run once (seeded, under the seed lock): its shared value by scenario
    name; what setup registered with ctx.on_close is closed when the session ends."""
    from harness.measure.contract import Context
    from harness.project.djangoenv import seed_lock

    contexts: dict = {}
    values: dict = {}

    def get(scenario, profile: str, params):
        if scenario.name not in values:
            ctx = Context(params, 42, profile, lab_stack.components)
            contexts[scenario.name] = ctx
            with seed_lock():
                values[scenario.name] = scenario.setup(ctx) if scenario.setup is not None else None
        return values[scenario.name]
    yield get
    for ctx in contexts.values():
        ctx.close()
