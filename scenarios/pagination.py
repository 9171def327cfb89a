"""Pagination: OFFSET/LIMIT (Django's Paginator, with and without its COUNT; DRF's
PageNumberPagination and LimitOffsetPagination) vs keyset (a hand-written cursor; DRF's
CursorPagination), at a shallow and a deep page; the plan says how many rows each reads; and what
OFFSET does to readers while rows are inserted (duplicates and skips, counted).

Newest first: ORDER BY created_at DESC, id DESC, on a copy of the listing table with an index
on (created_at, id) — the index both strategies need.
"""
from __future__ import annotations

from pathlib import Path

from harness.measure import counters
from harness.scenario import (
    Calibrated,
    Case,
    Check,
    Context,
    Metric,
    Scenario,
    Variant,
    metric_check,
    queries_exactly,
    same_result_as,
)
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


# -- Django REST framework's paginators, driven as a list view drives them ------------------------
def _drf_request(query: dict):
    from django.test import RequestFactory
    from rest_framework.request import Request

    return Request(RequestFactory().get("/listings/", query))


def drf_page_number(page: int, size: int) -> list[int]:
    """DRF PageNumberPagination (?page=N): Django's Paginator underneath, so COUNT(*) + OFFSET."""
    from rest_framework.pagination import PageNumberPagination

    paginator = PageNumberPagination()
    paginator.page_size = size
    return list(paginator.paginate_queryset(_ordered().values_list("id", flat=True), _drf_request({"page": page})))


def drf_limit_offset(page: int, size: int) -> list[int]:
    """DRF LimitOffsetPagination (?limit=&offset=): COUNT(*) + OFFSET."""
    from rest_framework.pagination import LimitOffsetPagination

    request = _drf_request({"limit": size, "offset": (page - 1) * size})
    return list(LimitOffsetPagination().paginate_queryset(_ordered().values_list("id", flat=True), request))


def _drf_cursor_paginator(size: int):
    from rest_framework.pagination import CursorPagination

    paginator = CursorPagination()
    paginator.page_size = size
    paginator.ordering = ("-created_at", "-id")
    return paginator


def drf_cursor(token: str | None, size: int) -> list[int]:
    """DRF CursorPagination (?cursor=…): WHERE created_at < position, LIMIT size + 1; no COUNT."""
    request = _drf_request({"cursor": token} if token else {})
    rows = _drf_cursor_paginator(size).paginate_queryset(_ordered().values("id", "created_at"), request)
    return [r["id"] for r in rows]


def _drf_token_for(page: int, size: int) -> str | None:
    """The opaque cursor DRF puts in the previous page's `next` link (unique created_at: offset 0)."""
    from urllib.parse import parse_qs, urlsplit

    from rest_framework.pagination import Cursor

    last = _cursor_for(page, size)
    if last is None:
        return None
    paginator = _drf_cursor_paginator(size)
    paginator.base_url = "http://testserver/listings/"
    link = paginator.encode_cursor(Cursor(offset=0, reverse=False, position=str(last[0])))
    return parse_qs(urlsplit(link).query)["cursor"][0]


DRF = {"drf_page_number": drf_page_number, "drf_limit_offset": drf_limit_offset}
DRF_QUERIES = {"drf_page_number": 2, "drf_limit_offset": 2, "drf_cursor": 1}


def _drf_variant(name: str, page: int, size: int):
    def make(ctx: Context):
        if name == "drf_cursor":
            token = _drf_token_for(page, size)  # given to the client in the previous page's `next` link

            def unit():
                return drf_cursor(token, size)
        else:
            fn = DRF[name]

            def unit():
                return fn(page, size)
        if ctx.counting:  # the plan of the page query DRF really sent (the last one; COUNT comes first)
            from collections import Counter

            with counters.count_queries(Counter(), keep_sql=True) as seen:
                unit()
            sql, params = seen.statements[-1]
            ctx.metrics.update(_plan_metrics(counters.plan_json(sql, params, analyze=True)))
        return unit
    return make


def _plan_metrics(plan: dict) -> dict:
    """Scan node, rows read under the LIMIT (what OFFSET reads and throws away), index used."""
    from harness.measure.counters import walk_plan

    nodes, used = walk_plan(plan)
    node = plan
    while node.get("Plans") and node["Node Type"] in {"Limit", "Result"}:
        node = node["Plans"][0]
    scan = next((n for n in nodes if n not in {"Limit", "Result", "Sort"}), plan["Node Type"])
    return {"plan": scan, "rows_read": int(node.get("Actual Rows", 0) * node.get("Actual Loops", 1)),
            "index_used": ",".join(used)}


def _variant(name: str, page: int, size: int):
    if name.startswith("drf_"):
        return _drf_variant(name, page, size)

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
            ctx.metrics.update(_plan_metrics(counters.plan_json(*query.query.sql_with_params(), analyze=True)))
        return unit
    return make


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
        ctx.on_close(close)
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
        names = ("offset_paginator", "offset_only", "keyset", "drf_page_number", "drf_limit_offset", "drf_cursor")
        checks = [same_result_as(n, "offset_paginator") for n in names[1:]]
        checks += [queries_exactly("offset_paginator", 2), queries_exactly("offset_only", 1),
                   queries_exactly("keyset", 1)] + [queries_exactly(n, q) for n, q in DRF_QUERIES.items()]
        checks += [_rows_check("keyset", size + 1), _rows_check("drf_cursor", size + 1)]
        if label == "deep":
            checks += [metric_check(n, "rows_read", lambda v, p=page: v is not None and v >= (p - 1) * size,
                                    f">= {(page - 1) * size} (OFFSET reads and discards)")
                       for n in ("offset_only", "drf_page_number", "drf_limit_offset")]
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
                    columns=("duplicates",), timing=Calibrated(rounds=3)))
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
    deep = next((c for c in result.cases if c.name == "deep_page"), None)
    if deep is not None and deep.variants.get("drf_cursor") and deep.variants["drf_cursor"].ratio:
        v = deep.variants
        lines.append(f"DRF: CursorPagination is keyset pagination (1 query, {v['drf_cursor'].metrics.get('rows_read')} "
                     f"rows read at page {deep.params['page']}); PageNumberPagination and LimitOffsetPagination are "
                     f"COUNT(*) + OFFSET ({v['drf_limit_offset'].metrics.get('rows_read')} rows read). "
                     f"Cursor vs page number there: {v['drf_page_number'].ratio / v['drf_cursor'].ratio:.1f}× faster.")
    else:
        lines.append("DRF's CursorPagination is keyset pagination; PageNumberPagination and LimitOffsetPagination "
                     "are OFFSET.")
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
    metrics=(Metric("rows_read", "rows read", kind="exact", description="rows the plan read under the LIMIT"),
             Metric("plan", "plan", kind="exact", better=None, description="the scan node of the page query"),
             Metric("index_used", "index", better=None),
             Metric("duplicates", "dups", kind="exact", description="rows seen twice when paging while rows "
                                                                     "are inserted")),
)
