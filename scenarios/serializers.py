"""The cost of building a JSON response: DRF ModelSerializer vs a plain Serializer vs values() + a
dict vs a hand-built dict, nested and flat; json vs orjson vs DRF's JSONRenderer; and DRF's own
N+1 — a nested serializer and a SerializerMethodField doing a query per row — fixed with
select_related / prefetch_related / an annotation. Every variant of a case returns the same bytes
(checked) and its query count per page is exact.

Unit of work: one page of books as an API would return it. Nested: each book with its publisher,
author, tag names and review count. Flat: the book's own columns.
"""
from __future__ import annotations

import functools
import json
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


def render(data) -> bytes:
    """The one JSON form every variant of a case returns (compact, UTF-8): json.dumps, as Django's
    JsonResponse would, minus the spaces."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


# -- DRF serializers ----------------------------------------------------------------------------------
@functools.cache
def _serializers():
    """DRF classes, built on first use (DRF needs Django configured)."""
    from rest_framework import serializers

    from labs.bookstore.models import Author, Book, Publisher

    class PublisherSerializer(serializers.ModelSerializer):
        class Meta:
            model = Publisher
            fields = ("id", "name")

    class AuthorSerializer(serializers.ModelSerializer):
        class Meta:
            model = Author
            fields = ("id", "name")

    class NaiveBookSerializer(serializers.ModelSerializer):
        """What a first version looks like: nested serializers and a method field, over a bare queryset."""
        publisher = PublisherSerializer()
        author = AuthorSerializer()
        tags = serializers.SerializerMethodField()
        review_count = serializers.SerializerMethodField()

        class Meta:
            model = Book
            fields = ("id", "title", "price_cents", "published", "publisher", "author", "tags", "review_count")

        def get_tags(self, book):
            return sorted(t.name for t in book.tags.all())

        def get_review_count(self, book):
            return book.reviews.count()  # a query per row, whatever the queryset prefetched

    class BookSerializer(NaiveBookSerializer):
        """The same fields; the count read from an annotation the queryset carries."""
        review_count = serializers.IntegerField(source="n_reviews")

    class PlainBookSerializer(serializers.Serializer):
        """serializers.Serializer: declared fields, no model introspection."""
        id = serializers.IntegerField()
        title = serializers.CharField()
        price_cents = serializers.IntegerField()
        published = serializers.DateField()
        publisher = serializers.SerializerMethodField()
        author = serializers.SerializerMethodField()
        tags = serializers.SerializerMethodField()
        review_count = serializers.IntegerField(source="n_reviews")

        def get_publisher(self, book):
            return {"id": book.publisher.id, "name": book.publisher.name}

        def get_author(self, book):
            return {"id": book.author.id, "name": book.author.name}

        def get_tags(self, book):
            return sorted(t.name for t in book.tags.all())

    class FlatModelSerializer(serializers.ModelSerializer):
        class Meta:
            model = Book
            fields = ("id", "title", "price_cents", "pages", "published", "stock")

    return {"naive": NaiveBookSerializer, "model": BookSerializer, "plain": PlainBookSerializer,
            "flat": FlatModelSerializer}


def serializer(kind: str):
    return _serializers()[kind]


def _page(n: int):
    from labs.bookstore.models import Book

    return Book.objects.order_by("id")[:n]


def _optimised(n: int):
    """select_related for the foreign keys, prefetch_related for the tags, the count annotated."""
    from django.db.models import Count

    from labs.bookstore.models import Book

    return (Book.objects.select_related("publisher", "author").prefetch_related("tags")
            .annotate(n_reviews=Count("reviews")).order_by("id")[:n])


# -- nested -------------------------------------------------------------------------------------------
def drf_naive(n: int) -> bytes:
    """ModelSerializer with nested serializers and method fields over Book.objects: the N+1, in DRF."""
    return render(serializer("naive")(_page(n), many=True).data)


def drf_model(n: int) -> bytes:
    """The same ModelSerializer over select_related + prefetch_related + annotate(Count)."""
    return render(serializer("model")(_optimised(n), many=True).data)


def drf_plain(n: int) -> bytes:
    """serializers.Serializer with declared fields, over the same queryset."""
    return render(serializer("plain")(_optimised(n), many=True).data)


def hand_dict(n: int) -> bytes:
    """The same queryset, each dict built by hand: no serializer at all."""
    return render([{"id": b.id, "title": b.title, "price_cents": b.price_cents, "published": b.published.isoformat(),
                    "publisher": {"id": b.publisher.id, "name": b.publisher.name},
                    "author": {"id": b.author.id, "name": b.author.name},
                    "tags": sorted(t.name for t in b.tags.all()), "review_count": b.n_reviews}
                   for b in _optimised(n)])


def _values(n: int) -> list[dict]:
    """One query: values() with the tag names aggregated and the reviews counted (distinct: the two
    joins multiply rows), no model instances."""
    from django.contrib.postgres.aggregates import ArrayAgg
    from django.db.models import Count

    from labs.bookstore.models import Book

    rows = (Book.objects.order_by("id")
            .values("id", "title", "price_cents", "published", "publisher_id", "publisher__name", "author_id",
                    "author__name")
            .annotate(tag_names=ArrayAgg("tags__name", distinct=True),
                      n_reviews=Count("reviews", distinct=True))[:n])
    return [{"id": r["id"], "title": r["title"], "price_cents": r["price_cents"],
             "published": r["published"].isoformat(),
             "publisher": {"id": r["publisher_id"], "name": r["publisher__name"]},
             "author": {"id": r["author_id"], "name": r["author__name"]},
             "tags": sorted(t for t in r["tag_names"] if t is not None), "review_count": r["n_reviews"]}
            for r in rows]


def values_dict(n: int) -> bytes:
    """values() + ArrayAgg + Count(distinct) in one query, dicts from the rows."""
    return render(_values(n))


NESTED = {
    "drf_naive": (drf_naive, lambda n: 1 + 4 * n),
    "drf_model": (drf_model, lambda n: 2),
    "drf_plain": (drf_plain, lambda n: 2),
    "hand_dict": (hand_dict, lambda n: 2),
    "values_dict": (values_dict, lambda n: 1),
}
"""name: (unit, queries per page of n books)."""


# -- flat ---------------------------------------------------------------------------------------------
FLAT_FIELDS = ("id", "title", "price_cents", "pages", "published", "stock")


def drf_flat(n: int) -> bytes:
    """ModelSerializer over model instances: a field object per column, per row."""
    from labs.bookstore.models import Book

    return render(serializer("flat")(Book.objects.only(*FLAT_FIELDS).order_by("id")[:n], many=True).data)


def values_flat(n: int) -> bytes:
    """values() of the same columns: plain dicts from the cursor."""
    from labs.bookstore.models import Book

    rows = Book.objects.order_by("id").values(*FLAT_FIELDS)[:n]
    return render([{**r, "published": r["published"].isoformat()} for r in rows])


FLAT = {"drf_flat": drf_flat, "values_flat": values_flat}


# -- rendering ----------------------------------------------------------------------------------------
def _rendering(name: str):
    def make(ctx: Context):
        data = _values(ctx.params["page"])  # built once, untimed: only the rendering is measured
        if name == "json":
            return lambda: render(data)
        if name == "orjson":
            import orjson

            return lambda: orjson.dumps(data)
        from rest_framework.renderers import JSONRenderer

        renderer = JSONRenderer()
        return lambda: renderer.render(data)
    return make


RENDERERS = {
    "json": "json.dumps(separators=(',', ':'), ensure_ascii=False)",
    "orjson": "orjson.dumps (Rust; bytes out)",
    "drf_renderer": "DRF JSONRenderer (json.dumps with its encoder)",
}


def cases(params) -> list[Case]:
    n = params["page"]
    nested = tuple(Variant(name, (lambda fn: lambda ctx: (lambda: fn(ctx.params["page"])))(fn),
                           description=(fn.__doc__ or "").strip().splitlines()[0])
                   for name, (fn, _q) in NESTED.items())
    nested_checks = [queries_exactly(name, q(n)) for name, (_fn, q) in NESTED.items()]
    nested_checks += [same_result_as(name, "drf_naive") for name in NESTED if name != "drf_naive"]
    flat = tuple(Variant(name, (lambda fn: lambda ctx: (lambda: fn(ctx.params["page"])))(fn),
                         description=(fn.__doc__ or "").strip().splitlines()[0]) for name, fn in FLAT.items())
    rendering = tuple(Variant(name, _rendering(name), description=desc) for name, desc in RENDERERS.items())
    return [
        Case("nested", {"page": n}, "drf_naive", nested, tuple(nested_checks),
             title=f"a page of {n} books with publisher, author, tags and review count", columns=("queries",)),
        Case("flat", {"page": params["flat_page"]}, "drf_flat", flat,
             (queries_exactly("drf_flat", 1), queries_exactly("values_flat", 1),
              same_result_as("values_flat", "drf_flat")),
             title=f"a page of {params['flat_page']} books, their own columns only", columns=("queries",)),
        Case("render", {"page": n}, "json", rendering,
             tuple(same_result_as(name, "json") for name in RENDERERS if name != "json"),
             title=f"the nested page of {n} books, already built, rendered to bytes"),
    ]


def setup(ctx: Context) -> None:
    common.seed_catalog_for(ctx, at_least=max(ctx.params["page"], ctx.params["flat_page"]))


def summarize(result) -> list[str]:
    """Lesson lines from this run's numbers (a line whose numbers are missing is left out)."""
    cases = {c.name: c for c in result.cases}
    out = []
    nested = cases.get("nested")
    if nested:
        n = nested.params["page"]
        naive, model = nested.variants.get("drf_naive"), nested.variants.get("drf_model")
        if naive and model and model.ratio and naive.counters.get("queries") is not None:
            out.append(f"DRF's N+1: a nested ModelSerializer with a SerializerMethodField ran "
                       f"{naive.counters['queries']:g} queries for {n} books; over select_related + prefetch_related "
                       f"+ annotate(Count) the same serializer ran {model.counters.get('queries', 0):g} and was "
                       f"{1 / model.ratio:.1f}× faster" + (" — the same bytes" if nested.passed("drf_model") else "")
                       + ".")
        built = {name: v for name, v in nested.variants.items() if name != "drf_naive" and v.median_s}
        if model and model.median_s and len(built) > 1:
            parts = ", ".join(f"{name} {v.median_s * 1000:.2f} ms" for name, v in
                              sorted(built.items(), key=lambda kv: kv[1].median_s))
            fastest = min(built.values(), key=lambda v: v.median_s)
            out.append(f"With the queries fixed, building the page: {parts}; {fastest.name} was "
                       f"{model.median_s / fastest.median_s:.1f}× faster than the ModelSerializer.")
    flat = cases.get("flat")
    if flat and (d := flat.variants.get("drf_flat")) and (v := flat.variants.get("values_flat")) and v.ratio:
        out.append(f"Flat page of {flat.params['page']} books, one query each: values() was {1 / v.ratio:.1f}× faster "
                   f"than ModelSerializer ({v.median_s * 1000:.2f} vs {d.median_s * 1000:.2f} ms).")
    rend = cases.get("render")
    if rend and (o := rend.variants.get("orjson")) and o.ratio:
        line = f"Rendering the built page: orjson was {1 / o.ratio:.1f}× faster than json.dumps"
        drf = rend.variants.get("drf_renderer")
        if drf and drf.ratio:
            line += f"; DRF's JSONRenderer took {drf.ratio:.2f}× json.dumps's time"
        same = rend.passed(*(n for n in rend.variants if n != "json"))
        out.append(line + (" (the same bytes)" if same else "") + ".")
    return out


SCENARIO = Scenario(
    name="serializers",
    title="Building a JSON response: DRF serializers vs values() vs dicts, json vs orjson",
    requires=frozenset({"postgres"}),
    profiles={
        "quick": {"page": 50, "flat_page": 200, "catalog": common.CATALOG["quick"]},
        "nightly": {"page": 50, "flat_page": 200, "catalog": common.CATALOG["quick"]},
        "full": {"page": 100, "flat_page": 1000, "catalog": common.CATALOG["full"]},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
)
