"""n_plus_one on the real embedded stack at tiny sizes: exact query counts, identical results."""
from __future__ import annotations

import pytest

from harness.measure.runner import RunOptions, run_scenario
from harness.project import registry

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def result(stack, tiny_budget):
    opts = RunOptions(("n_plus_one",), params={"books": "3,7", "catalog": "40"}, budget=tiny_budget)
    return run_scenario(registry.get("n_plus_one"), opts, stack)


def test_all_checks_pass(result):
    assert result.complete and result.ok
    failed = [c for c in result.checks if not c.ok]
    assert not failed


@pytest.mark.parametrize("n", [3, 7])
def test_exact_query_counts(result, n):
    case = next(c for c in result.cases if c.params["books"] == n)
    queries = {name: v.counters["queries"] for name, v in case.variants.items()}
    assert queries == {"naive": 1 + 2 * n, "select_related": 1 + n, "prefetch_related": 2,
                       "prefetch_object": 2, "values_agg": 1}


def test_results_identical_across_variants(stack):
    from scenarios import n_plus_one as mod

    rows = {name: fn(7) for name, (fn, _, _) in mod.IMPLEMENTATIONS.items()}
    reference = rows.pop("naive")
    assert len(reference) == 7 and all(r[3] for r in reference)  # every book has tags
    for name, got in rows.items():
        assert got == reference, name


def test_explain_captured_for_prefetch(result):
    plans = result.cases[-1].variants["prefetch_related"].explain
    assert len(plans) == 2
    assert all(p["top_node"] and p["nodes"] for p in plans)
    assert any("bookstore_book_tags" in p["sql"] for p in plans)


def test_every_variant_measured_with_ratio(result):
    case = result.cases[0]
    for v in case.variants.values():
        assert len(v.samples_s) == case.rounds >= 3
        assert v.ratio is not None and v.ratio_ci95[0] <= v.ratio <= v.ratio_ci95[1]
    assert case.variants["naive"].ratio == 1.0


def test_lesson_written_from_numbers(result):
    text = " ".join(result.lesson)
    assert "At 7 books, naive ran 15 queries" in text


def test_seeding_is_deterministic_and_skipped_when_loaded(stack):
    from labs.bookstore.models import Book
    from labs.bookstore.seed import seed_catalog

    assert seed_catalog(40, 42) is False  # already loaded by the module fixture
    first = list(Book.objects.order_by("id").values_list("title", "publisher_id")[:5])
    assert seed_catalog(41, 42) is True
    assert seed_catalog(40, 42) is True
    assert list(Book.objects.order_by("id").values_list("title", "publisher_id")[:5]) == first


def test_wrong_result_fails_the_check(stack, tiny_budget):
    """A fast wrong answer is not a result: a variant that drops a row fails same_result_as."""
    from dataclasses import replace

    from harness.scenario import Variant
    from scenarios import n_plus_one as mod

    sc = registry.get("n_plus_one")

    def broken_cases(params):
        out = []
        for case in mod.cases(params):
            bad = Variant("values_agg", lambda ctx: (lambda: mod.values_agg(case.params["books"])[:-1]))
            out.append(replace(case, variants=tuple(bad if v.name == "values_agg" else v for v in case.variants)))
        return out

    opts = RunOptions(("n_plus_one",), params={"books": "3", "catalog": "40"}, budget=tiny_budget)
    res = run_scenario(replace(sc, cases=broken_cases), opts, stack)
    failed = [c for c in res.checks if not c.ok]
    assert [(c.variant, c.name) for c in failed] == [("values_agg", "same result as naive")]
    assert not res.ok
