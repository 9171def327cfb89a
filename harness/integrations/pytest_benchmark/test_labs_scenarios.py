"""One pytest-benchmark test per scenario × case × variant (load scenarios excluded: a Locust burst
is not a function call)."""
from __future__ import annotations

import os

import pytest

from harness.measure.contract import Context, SelfTimed
from harness.measure.runner import RunOptions, counting_pass
from harness.project import registry

SCENARIOS = [s for s in os.environ.get("LABS_BENCH_SCENARIOS", "n_plus_one,caching,indexes").split(",") if s]
PROFILE = os.environ.get("LABS_BENCH_PROFILE", "quick")


def _overrides(name: str) -> dict[str, str]:
    sc = registry.get(name)
    pairs = (item.partition("=") for item in os.environ.get("LABS_BENCH_PARAMS", "").split(";") if item.strip())
    return {k.strip(): v.strip() for k, _, v in pairs if k.strip() in sc.profile_params(PROFILE)}


def _items():
    for name in SCENARIOS:
        sc = registry.get(name)
        for case in sc.cases(sc.params_for(PROFILE, _overrides(name))):
            if isinstance(case.timing, SelfTimed):
                continue
            for v in case.variants:
                yield pytest.param(name, case, v, id=f"{name}-{case.name}-{v.name}")


@pytest.mark.parametrize("name, case, variant", list(_items()))
def test_variant(benchmark, lab_stack, lab_shared, name, case, variant):
    sc = registry.get(name)
    params = sc.params_for(PROFILE, _overrides(name))
    components = lab_stack.components
    if variant.requires - components:
        pytest.skip(f"needs {', '.join(sorted(variant.requires - components))}")
    opts = RunOptions((name,), PROFILE, params=_overrides(name))
    shared = lab_shared(sc, PROFILE, params)
    # the checks first: the baseline's and this variant's verified passes
    runs = {}
    for v in {case.baseline: None, variant.name: None}:
        run, _ = counting_pass(next(x for x in case.variants if x.name == v), case, opts, components, shared=shared)
        runs[v] = run
    failed = [c for c in (chk.evaluate(runs) for chk in case.checks) if c.variant == variant.name and not c.ok
              and not c.skipped]
    assert not failed, "; ".join(f"{c.name}: {c.detail}" for c in failed)
    ctx = Context(case.params, opts.seed, PROFILE, components, shared=shared)
    unit = variant.make(ctx)
    benchmark.extra_info.update(scenario=name, case=case.name, variant=variant.name, baseline=case.baseline,
                                counters={k: runs[variant.name].per_unit(k) for k in runs[variant.name].counters})
    try:
        benchmark.pedantic(unit, rounds=int(os.environ.get("LABS_BENCH_ROUNDS", "10")), warmup_rounds=1)
    finally:
        ctx.close()
