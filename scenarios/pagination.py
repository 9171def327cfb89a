"""Pagination: OFFSET/LIMIT (Django's Paginator, with and without its COUNT) vs keyset (cursor)
pagination, at a shallow and a deep page; the plan says how many rows each reads; and what
OFFSET does to readers while rows are inserted (duplicates and skips, counted).

Newest first: ORDER BY created_at DESC, id DESC, on a copy of the listing table with an index
on (created_at, id) — the index both strategies need.
"""
from __future__ import annotations

from pathlib import Path

from harness.scenario import Case, Check, Context, Scenario, Variant, metric_check, same_result_as
from scenarios import indexes

TABLE = "ix_pagination"
INDEX = "idx_pagination_created_id"


def _model():
    return indexes.model_for(TABLE)


def _ordered():
    return _model().objects.order_by("-created_at", "-id")


def offset_paginator(page: int, size: int) -> list[int]:
    """Django's Paginator: SELECT COUNT(*) for the page count, then OFFSET (page-1)*size."""
    from django.core.paginator import Paginator

    return [row for row in Paginator(_ordered().values_list("id", flat=True), size).page(page).object_list]


def offset_only(page: int, size: int) -> list[int]:
    """The same OFFSET query without the COUNT (no "page N of M")."""
    start = (page - 1) * size
    return list(_ordered().values_list("id", flat=True)[start:start + size])


def keyset_after(last: tuple | None, size: int):
    """Rows strictly after the previous page's last (created_at, id): no OFFSET at all."""
    from django.db.models import BooleanField
    from django.db.models.expressions import RawSQL

    qs = _ordered()
    if last is not None:
        qs = qs.filter(RawSQL("(created_at, id) < (%s, %s)", last, output_field=BooleanField()))
    return qs.values_list("id", "created_at")[:size]


def _cursor_for(page: int, size: int) -> tuple | None:
    """The cursor a client would hold when asking for `page` (from the previous page's last row)."""
    if page == 1:
        return None
    start = (page - 1) * size - 1
    row = _ordered().values_list("created_at", "id")[start:start + 1]
    return tuple(row[0])


def _variant(name: str, page: int, size: int):
    def make(ctx: Context):
        if name == "keyset":
            cursor = _cursor_for(page, size)  # given to the client with the previous page

            def unit():
                return [i for i, _ in keyset_after(cursor, size)]
            query = keyset_after(cursor, size)
        else:
            fn = offset_paginator if name == "offset_paginator" else offset_only

            def unit():
                return fn(page, size)
            start = (page - 1) * size
            query = _ordered().values_list("id", flat=True)[start:start + size]
        if ctx.counting:
            plan = indexes.plan_summary(query)
            scan = next((n for n in plan["nodes"] if n not in {"Limit", "Result", "Sort"}), plan["top_node"])
            ctx.metrics.update(plan=scan, rows_read=_rows_read(query), index_used=",".join(plan["indexes"]))
        return unit
    return make


def _rows_read(qs) -> int:
    """Rows the scan under the LIMIT produced: what OFFSET makes the database read and throw away."""
    import json

    plan = json.loads(qs.explain(format="json", analyze=True))[0]["Plan"]
    node = plan
    while node.get("Plans") and node["Node Type"] in {"Limit", "Result"}:
        node = node["Plans"][0]
    return int(node.get("Actual Rows", 0) * node.get("Actual Loops", 1))


# -- consistency while rows are inserted ---------------------------------------------------------
def _consistency(name: str):
    """Read page 1, insert `inserts` newer rows (as other users would), read page 2: count the rows
    page 2 repeats from page 1. Then the inserted rows are removed."""
    def make(ctx: Context):
        size, inserts = ctx.params["size"], ctx.params["inserts"]
        stats = {"duplicates": 0, "rounds": 0}

        def unit():
            from django.db import connection

            last = None
            if name == "offset":
                first = offset_only(1, size)
            else:
                rows = list(keyset_after(None, size))
                first = [i for i, _ in rows]
                last = (rows[-1][1], rows[-1][0])  # the cursor: (created_at, id) of the last row shown
            with connection.cursor() as cur:
                cur.execute(f'INSERT INTO "{TABLE}" (id, sku, code, title, body, price, status, created_at, attrs, '
                            f"period, search) SELECT 50000000 + g, sku, code, title, body, price, status, "
                            f"now() + g * interval '1 second', attrs, period, search FROM \"{TABLE}\", "
                            f"generate_series(1, %s) g WHERE id = 1", [inserts])
            try:
                second = offset_only(2, size) if name == "offset" else [i for i, _ in keyset_after(last, size)]
            finally:
                with connection.cursor() as cur:
                    cur.execute(f'DELETE FROM "{TABLE}" WHERE id > 50000000')
            stats["duplicates"] += len(set(first) & set(second))
            stats["rounds"] += 1
            return None

        def close():
            if ctx.counting and stats["rounds"]:
                ctx.metrics["duplicates"] = stats["duplicates"] // stats["rounds"]
        ctx.state["close"] = close
        return unit
    return make


def _rows_check(variant: str, max_rows: int) -> Check:
    def fn(runs):
        got = runs[variant].metrics.get("rows_read")
        return got is not None and got <= max_rows, f"read {got} rows (at most {max_rows})"
    return Check(f"reads <= {max_rows} rows", variant, fn)


def cases(params) -> list[Case]:
    size = params["size"]
    out = []
    for label, page in (("shallow", 2), ("deep", params["deep_page"])):
        names = ("offset_paginator", "offset_only", "keyset")
        checks = [same_result_as("offset_only", "offset_paginator"), same_result_as("keyset", "offset_paginator"),
                  _rows_check("keyset", size + 1)]
        if label == "deep":
            checks.append(metric_check("offset_only", "rows_read", lambda v, p=page: v is not None and v >= (p - 1) * size,
                                       f">= {(page - 1) * size} (OFFSET reads and discards)"))
        out.append(Case(f"{label}_page", {"page": page, "size": size, "rows": params["rows"]}, "offset_paginator",
                        tuple(Variant(n, _variant(n, page, size)) for n in names), tuple(checks),
                        title=f"{label} page {page} of {size} rows · {params['rows']:,} rows, newest first",
                        columns=("queries", "rows_read", "plan")))
    out.append(Case("consistency", {"size": size, "inserts": params["inserts"]}, "offset",
                    (Variant("offset", _consistency("offset")), Variant("keyset", _consistency("keyset"))),
                    (metric_check("offset", "duplicates", lambda v: v == params["inserts"],
                                  f"== {params['inserts']} (page 2 repeats what the inserts pushed down)"),
                     metric_check("keyset", "duplicates", lambda v: v == 0, "== 0")),
                    title=f"consistency · {params['inserts']} rows inserted between page 1 and page 2",
                    columns=("duplicates",), rounds=3))
    return out


def setup(ctx: Context) -> None:
    from django.db import connection

    indexes.seed_listings(ctx.params["rows"])
    indexes.ensure_copy(TABLE)
    with connection.cursor() as cur:
        cur.execute(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "{TABLE}" (created_at DESC, id DESC)')
        cur.execute(f'ANALYZE "{TABLE}"')


def summarize(result) -> list[str]:
    lines = []
    for case in result.cases:
        v = case.variants
        if case.name.endswith("_page") and v.get("keyset") and v["keyset"].ratio:
            lines.append(f"{case.name.replace('_', ' ')} {case.params['page']}: OFFSET read "
                         f"{v['offset_only'].metrics.get('rows_read')} rows to return {case.params['size']}, keyset "
                         f"{v['keyset'].metrics.get('rows_read')}; keyset was {1 / v['keyset'].ratio:.1f}× faster than "
                         f"the Paginator, whose COUNT(*) is a query of its own.")
        elif case.name == "consistency" and v.get("offset"):
            lines.append(f"With {case.params['inserts']} rows inserted between two requests, OFFSET page 2 repeated "
                         f"{v['offset'].metrics.get('duplicates')} rows of page 1; keyset repeated "
                         f"{v['keyset'].metrics.get('duplicates')}.")
    lines.append("DRF's CursorPagination is keyset pagination; PageNumberPagination and LimitOffsetPagination are "
                 "OFFSET.")
    return lines


SCENARIO = Scenario(
    name="pagination",
    title="Pagination: OFFSET vs keyset, COUNT(*) and consistency",
    requires=frozenset({"postgres"}),
    profiles={"quick": {"rows": 100_000, "size": 50, "deep_page": 1500, "inserts": 7},
              "full": {"rows": 2_000_000, "size": 50, "deep_page": 30_000, "inserts": 7}},
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
)
