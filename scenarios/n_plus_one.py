"""N+1 queries vs select_related / prefetch_related / Prefetch / a single aggregated query.

Unit of work: list N books with their publisher's name and their tag names, as a web page
listing would. Every variant returns the same rows (checked), and its query count is exact.
"""
from __future__ import annotations

from pathlib import Path

from harness.scenario import (
    Case,
    Context,
    Scenario,
    Variant,
    queries_exactly,
    same_result_as,
)
from scenarios import common

Row = tuple[int, str, str, tuple[str, ...]]


def naive(n: int) -> list[Row]:
    """Loop over books; touching book.publisher and book.tags costs one query each, per book."""
    from labs.bookstore.models import Book

    return [(b.id, b.title, b.publisher.name, tuple(sorted(t.name for t in b.tags.all())))
            for b in Book.objects.order_by("id")[:n]]


def select_related(n: int) -> list[Row]:
    """select_related('publisher'): the FK joins in; the M2M still costs a query per book."""
    from labs.bookstore.models import Book

    return [(b.id, b.title, b.publisher.name, tuple(sorted(t.name for t in b.tags.all())))
            for b in Book.objects.select_related("publisher").order_by("id")[:n]]


def prefetch_related(n: int) -> list[Row]:
    """select_related('publisher') + prefetch_related('tags'): one query for books, one for all tags."""
    from labs.bookstore.models import Book

    return [(b.id, b.title, b.publisher.name, tuple(sorted(t.name for t in b.tags.all())))
            for b in Book.objects.select_related("publisher").prefetch_related("tags").order_by("id")[:n]]


def prefetch_object(n: int) -> list[Row]:
    """Prefetch('tags', queryset=Tag.objects.only('name'), to_attr=...) and only() on books."""
    from django.db.models import Prefetch

    from labs.bookstore.models import Book, Tag

    books = (Book.objects.select_related("publisher")
             .only("id", "title", "publisher__name")
             .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name"), to_attr="tag_list"))
             .order_by("id")[:n])
    return [(b.id, b.title, b.publisher.name, tuple(sorted(t.name for t in b.tag_list))) for b in books]


def values_agg(n: int) -> list[Row]:
    """One query: values() + ArrayAgg of tag names, no model instances at all."""
    from django.contrib.postgres.aggregates import ArrayAgg

    from labs.bookstore.models import Book

    rows = (Book.objects.order_by("id")
            .values("id", "title", "publisher__name")
            .annotate(tag_names=ArrayAgg("tags__name"))[:n])
    return [(r["id"], r["title"], r["publisher__name"], tuple(sorted(t for t in r["tag_names"] if t is not None)))
            for r in rows]


IMPLEMENTATIONS = {
    "naive": (naive, lambda n: 1 + 2 * n, False),
    "select_related": (select_related, lambda n: 1 + n, False),
    "prefetch_related": (prefetch_related, lambda n: 2, True),
    "prefetch_object": (prefetch_object, lambda n: 2, True),
    "values_agg": (values_agg, lambda n: 1, True),
}


def _variant(name: str, n: int) -> Variant:
    fn, _, explain = IMPLEMENTATIONS[name]
    return Variant(name, lambda ctx: (lambda: fn(n)), description=(fn.__doc__ or "").strip(), explain=explain)


def cases(params) -> list[Case]:
    out = []
    for n in params["books"]:
        variants = tuple(_variant(name, n) for name in IMPLEMENTATIONS)
        checks = [queries_exactly(name, expected(n)) for name, (_, expected, _) in IMPLEMENTATIONS.items()]
        checks += [same_result_as(name, "naive") for name in IMPLEMENTATIONS if name != "naive"]
        out.append(Case(f"books={n}", {"books": n}, "naive", variants, tuple(checks), title=f"{n} books",
                        columns=("queries",)))
    return out


def setup(ctx: Context) -> None:
    common.seed_catalog_for(ctx, at_least=max(ctx.params["books"]))


def summarize(result) -> list[str]:
    lines = []
    if not result.cases:
        return lines
    last = result.cases[-1]
    n = last.params["books"]
    naive_q = last.variants["naive"].counters.get("queries")
    best = min((v for v in last.variants.values() if v.ratio and v.name != "naive"), key=lambda v: v.ratio,
               default=None)
    if best is not None and naive_q is not None:
        lo, hi = best.ratio_ci95
        lines.append(
            f"At {n} books, naive ran {naive_q:g} queries; {best.name} ran {best.counters.get('queries', 0):g} "
            f"and was {1 / best.ratio:.1f}× faster (95 % CI {1 / hi:.1f}–{1 / lo:.1f}×)."
        )
    sel = last.variants.get("select_related")
    if sel and sel.ratio:
        lines.append(
            f"select_related alone fixed the publisher FK but not the tags M2M: {sel.counters.get('queries', 0):g} "
            f"queries, only {1 / sel.ratio:.1f}× faster than naive."
        )
    if len(result.cases) > 1:
        first = result.cases[0]
        n0 = first.params["books"]
        growth = []
        for name in ("naive", "prefetch_related"):
            a, b = first.variants.get(name), last.variants.get(name)
            if a and b and a.median_s and b.median_s:
                growth.append(f"{name} {b.median_s / a.median_s:.1f}× ({a.counters.get('queries', 0):g}→"
                              f"{b.counters.get('queries', 0):g} queries)")
        if growth:
            lines.append(f"From {n0} to {n} books ({n / n0:g}× the rows) time grew: " + ", ".join(growth) + ".")
    return lines


SCENARIO = Scenario(
    name="n_plus_one",
    title="N+1 queries vs select_related / prefetch_related",
    requires=frozenset({"postgres"}),
    profiles={
        "quick": {"books": (10, 50, 200), "catalog": common.CATALOG["quick"]},
        # precision over size: 5 fresh processes share the rounds; naive at 200 books would spend
        # most of the minute the nightly job has for this scenario
        "nightly": {"books": (10, 50, 100), "catalog": common.CATALOG["quick"]},
        "full": {"books": (10, 100, 1000), "catalog": common.CATALOG["full"]},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
)
