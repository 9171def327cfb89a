"""GraphQL resolvers: the N+1 of naive resolvers vs DataLoader batching vs strawberry-django's query
optimizer, at query depth 1 to 3 (labs/graphql_api.py holds the three schemas; strawberry with strawberry-graphql-django, the
better kept of the two Django GraphQL stacks — see there). Every variant
returns the same JSON (checked) and its query count per request is exact.
"""
from __future__ import annotations

from pathlib import Path

from harness.scenario import Case, Context, Scenario, Variant, queries_exactly, same_result_as
from scenarios import common

QUERIES = {
    1: "{ books(first: %d) { id title } }",
    2: "{ books(first: %d) { id title author { id name } } }",
    3: "{ books(first: %d) { id title author { id name books { id title } } } }",
}
"""The same page at depth 1 (books), 2 (+ each book's author) and 3 (+ each author's books)."""
EXPECTED = {
    "naive": lambda d, n: 1 + (n if d >= 2 else 0) + (n if d >= 3 else 0),
    "dataloader": lambda d, n: d,
    "optimizer": lambda d, n: {1: 1, 2: 1, 3: 2}[d],
}
"""Queries per request at depth d for a page of n books: naive, a query per book for its author and
another per author (one per book) for their books; a DataLoader, one per level; the optimizer, the
author joined in (select_related) and the authors' books in one prefetch."""
DESCRIPTIONS = {
    "naive": "plain strawberry types over model instances: each relation an attribute access",
    "dataloader": "async resolvers + a DataLoader per relation and request (one query per level)",
    "optimizer": "strawberry-django types + DjangoOptimizerExtension (select_related/prefetch_related/only)",
}


def _normalised(data):
    """The response with every list of objects ordered by id (a prefetch does not promise the order
    of an author's books; the page itself is ordered by id in every schema)."""
    if isinstance(data, dict):
        return {k: _normalised(v) for k, v in data.items()}
    if isinstance(data, list):
        items = [_normalised(v) for v in data]
        return sorted(items, key=lambda v: int(v["id"])) if items and all(isinstance(v, dict) and "id" in v
                                                                             for v in items) else items
    return data


def _variant(schema: str, depth: int):
    def make(ctx: Context):
        from labs.graphql_api import execute

        query = QUERIES[depth] % ctx.params["first"]
        if ctx.counting:
            return lambda: _normalised(execute(schema, query))
        return lambda: execute(schema, query)
    return make


def cases(params) -> list[Case]:
    n = params["first"]
    out = []
    for depth in params["depths"]:
        variants = tuple(Variant(s, _variant(s, depth), description=DESCRIPTIONS[s]) for s in EXPECTED)
        checks = [queries_exactly(s, f(depth, n)) for s, f in EXPECTED.items()]
        checks += [same_result_as(s, "naive") for s in EXPECTED if s != "naive"]
        out.append(Case(f"depth={depth}", {"first": n, "depth": depth}, "naive", variants, tuple(checks),
                        title=QUERIES[depth] % n, columns=("queries",)))
    return out


def setup(ctx: Context) -> None:
    common.seed_catalog_for(ctx, at_least=ctx.params["first"])


def _queries(v) -> str:
    n = v.counters.get("queries", 0)
    return f"{n:g} quer{'y' if n == 1 else 'ies'}"


def _speed(ratio: float) -> str:
    return f"{1 / ratio:.1f}× faster" if ratio < 1 else f"{ratio:.1f}× slower"


def summarize(result) -> list[str]:
    out = []
    for case in result.cases:
        d = case.params["depth"]
        naive = case.variants.get("naive")
        parts = [f"{name} {_queries(v)}" + (f" ({_speed(v.ratio)})" if v.ratio else "")
                 for name, v in case.variants.items() if name != "naive"]
        if naive and naive.median_s and parts:
            out.append(f"Depth {d}, {case.params['first']} books: naive resolvers ran "
                       f"{_queries(naive)} in {naive.median_s * 1000:.1f} ms; "
                       + ", ".join(parts) + (" — the same JSON" if case.passed(*case.variants) else "") + ".")
    return out


SCENARIO = Scenario(
    name="graphql",
    title="GraphQL resolvers: N+1 vs DataLoader vs the ORM optimizer",
    requires=frozenset({"postgres"}),
    profiles={
        "quick": {"first": 20, "depths": (1, 2, 3), "catalog": common.CATALOG["quick"]},
        "full": {"first": 100, "depths": (1, 2, 3), "catalog": common.CATALOG["full"]},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
)
