"""The public API for scenario authors (built-in and user-written): import from here.

    from harness.scenario import Scenario, Case, Variant, Metric, same_result_as, queries_exactly

Everything else in `harness` is the engine and may move; names here stay (a renamed one keeps
working with a deprecation warning). See docs/own-code.md.
"""
from harness.measure.contract import *  # noqa: F401,F403
from harness.measure.contract import __all__  # noqa: F401
