"""PostgreSQL index types, verified by the plan: which index serves which query.

Each query class is a case: a "seq_scan" baseline (no index) and the indexes that can serve it,
declared with Django's own classes (Index, HashIndex, GinIndex, GistIndex, BrinIndex, OpClass,
Index(condition=...), Index(include=...), ExclusionConstraint, SearchVector/SearchQuery/SearchRank).
So that the planner can only pick *the variant's* index, every variant queries its own copy of
the same table (same rows, same physical order) with exactly one index on it; the baseline
copy has none. ANALYZE (and VACUUM, for index-only scans) after loading; no enable_* settings
anywhere. Each variant's plan (EXPLAIN ANALYZE, BUFFERS, JSON) must show its index, the
baseline's a Seq Scan, and every variant must return the baseline's rows.
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.scenario import (
    Case,
    Check,
    Context,
    Metric,
    Scenario,
    Variant,
    metric_check,
    same_result_as,
)

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
WORDS = ("amber basalt cedar delta ember fjord garnet harbor indigo juniper kelp lagoon meadow nectar "
         "onyx prairie quartz river summit tundra umber valley willow xenon yarrow zephyr").split()
RARE = "zorblax"
"""A token in about 1 row in 1000: the needle of the text searches."""
DATA_VERSION = 1


@dataclass(frozen=True)
class QueryClass:
    title: str
    query: Callable[[Any, Any], Any]
    """(model, parameter) -> queryset"""
    digest: Callable[[list], Any]
    params: tuple
    variants: dict[str, Callable[[str], Any]]
    """variant name -> (index name) -> Django Index object"""
    expect: dict[str, tuple[str, ...]]
    """variant -> plan node types that prove the index is used"""
    forbid: tuple[str, ...] = ()
    """plan node types that must not appear with the index (what the index exists to avoid)"""


def _ids(rows: list) -> tuple:
    return tuple(sorted(r if isinstance(r, int) else r[0] for r in rows))


def _q_equality(m, sku):
    return m.objects.filter(sku=sku).values_list("id", flat=True)


def _q_time_range(m, day):
    start = T0 + dt.timedelta(days=day)
    return m.objects.filter(created_at__gte=start, created_at__lt=start + dt.timedelta(hours=12)).values_list(
        "id", "price")


def _q_order_limit(m, day):
    return m.objects.filter(created_at__gte=T0 + dt.timedelta(days=day)).order_by("created_at").values_list(
        "id", flat=True)[:20]


def _q_jsonb(m, color):
    return m.objects.filter(attrs__contains={"color": color, "size": "XL", "brand": "b7"}).values_list("id", flat=True)


def _q_icontains(m, word):
    from django.db.models import Q

    return m.objects.filter(Q(title__icontains=word) | Q(body__icontains=word)).values_list("id", flat=True)


def _q_fts(m, word):
    from django.contrib.postgres.search import SearchQuery, SearchRank

    query = SearchQuery(word, config="simple")
    return (m.objects.filter(search=query).annotate(rank=SearchRank("search", query))
            .order_by("-rank", "id").values_list("id", flat=True))


def _q_trigram(m, fragment):
    return m.objects.filter(title__icontains=fragment).values_list("id", flat=True)


def _q_overlap(m, day):
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    start = T0 + dt.timedelta(days=day)
    return m.objects.filter(period__overlap=DateTimeTZRange(start, start + dt.timedelta(hours=2))).values_list(
        "id", flat=True)


def _q_partial(m, price):
    return m.objects.filter(status="active", price__lt=price).values_list("id", flat=True)


def _q_covering(m, start):
    return m.objects.filter(sku__gte=start, sku__lt=start + 150).values_list("sku", "price")


def _idx(cls_path: str, **kw):
    def build(name: str):
        from django.contrib.postgres import indexes as pg
        from django.db import models

        cls = {"Index": models.Index, "HashIndex": pg.HashIndex, "GinIndex": pg.GinIndex,
               "GistIndex": pg.GistIndex, "BrinIndex": pg.BrinIndex}[cls_path]
        if "condition" in kw:
            kw2 = {**kw, "condition": models.Q(**kw["condition"])}
            return cls(name=name, **kw2)
        if "opclass" in kw:
            from django.contrib.postgres.indexes import OpClass
            from django.db.models.functions import Upper

            field, opclass = kw["opclass"]
            expr = Upper(field.split(":")[1]) if field.startswith("upper:") else models.F(field)
            return cls(OpClass(expr, name=opclass), name=name)
        return cls(name=name, **kw)
    return build


SCAN = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")

QUERIES: dict[str, QueryClass] = {
    "equality": QueryClass("sku = ? (integer equality)", _q_equality, _ids, (17, 40_001, 99_999, 5, 777),
                           {"btree": _idx("Index", fields=["sku"]), "hash": _idx("HashIndex", fields=["sku"])},
                           {"btree": SCAN, "hash": SCAN}),
    "time_range": QueryClass("created_at in a 12 h window (time-correlated column)", _q_time_range,
                             lambda rows: tuple(sorted(rows)), (3, 30, 60),
                             {"btree": _idx("Index", fields=["created_at"]),
                              "brin": _idx("BrinIndex", fields=["created_at"])},
                             {"btree": SCAN, "brin": ("Bitmap Index Scan",)}),
    "order_limit": QueryClass("created_at >= ? ORDER BY created_at LIMIT 20", _q_order_limit, list, (10, 50),
                              {"btree": _idx("Index", fields=["created_at"])}, {"btree": ("Index Scan", "Index Only Scan")},
                              forbid=("Sort",)),
    "jsonb": QueryClass("attrs @> {color, size, brand} (JSONField __contains)", _q_jsonb, _ids, ("red", "blue"),
                        {"gin_jsonb_ops": _idx("GinIndex", fields=["attrs"]),
                         "gin_jsonb_path_ops": _idx("GinIndex", opclass=("attrs", "jsonb_path_ops"))},
                        {"gin_jsonb_ops": ("Bitmap Index Scan",), "gin_jsonb_path_ops": ("Bitmap Index Scan",)}),
    "fulltext": QueryClass(f"find '{RARE}': icontains (seq scan) vs SearchVector + GIN, ranked", _q_icontains, _ids,
                           (RARE,), {"gin_tsvector": _idx("GinIndex", fields=["search"])},
                           {"gin_tsvector": ("Bitmap Index Scan",)}),
    "trigram": QueryClass("title ILIKE '%orbla%' (icontains a fragment)", _q_trigram, _ids, ("orbla",),
                          # Django's icontains is UPPER(title) LIKE UPPER('%…%'): the index must be on
                          # Upper("title"), or the planner cannot use it at all
                          {"gin_trgm": _idx("GinIndex", opclass=("upper:title", "gin_trgm_ops")),
                           "gist_trgm": _idx("GistIndex", opclass=("upper:title", "gist_trgm_ops"))},
                          {"gin_trgm": ("Bitmap Index Scan",), "gist_trgm": SCAN}),
    "overlap": QueryClass("period && [t, t+2h) (range overlap)", _q_overlap, _ids, (5, 40),
                          {"gist": _idx("GistIndex", fields=["period"])}, {"gist": SCAN}),
    "partial": QueryClass("status = 'active' AND price < ? (5 % of rows active)", _q_partial, _ids, (2000,),
                          {"full": _idx("Index", fields=["status", "price"]),
                           "partial": _idx("Index", fields=["price"], condition={"status": "active"})},
                          {"full": SCAN, "partial": SCAN}),
    "covering": QueryClass("sku, price WHERE sku in a range of 150", _q_covering, lambda rows: tuple(sorted(rows)),
                           (1000, 60_000), {"btree": _idx("Index", fields=["sku"]),
                                            "covering": _idx("Index", fields=["sku"], include=["price"])},
                           {"btree": ("Index Scan", "Bitmap Index Scan"), "covering": ("Index Only Scan",)}),
}


# -- data and per-variant tables ------------------------------------------------------------------
def seed_listings(rows: int) -> bool:
    """Deterministic rows built in SQL from the row number (no random state to carry)."""
    from django.db import connection, transaction

    from labs.bookstore.models import SeedState

    fingerprint = f"v{DATA_VERSION}:rows={rows}"
    if SeedState.objects.filter(key="listing", fingerprint=fingerprint).exists():
        return False
    with transaction.atomic(), connection.cursor() as cur:
        for table in lab_tables():  # by exact name: never a pattern that could match someone's table
            cur.execute(f'DROP TABLE IF EXISTS "{table}"')
        cur.execute("TRUNCATE bookstore_listing RESTART IDENTITY")
        cur.execute(
            """
            INSERT INTO bookstore_listing (id, sku, code, title, body, price, status, created_at, attrs, period, search)
            SELECT g,
                   ((g::bigint * 7919) %% %(n)s) + 1,
                   substr(md5(g::text), 1, 12),
                   initcap(w[1 + abs(hashtext(g || 'a')) %% %(nw)s]) || ' ' || w[1 + abs(hashtext(g || 'b')) %% %(nw)s]
                     || CASE WHEN g %% 997 = 0 THEN ' ' || %(rare)s ELSE '' END || ' #' || g,
                   repeat(w[1 + abs(hashtext(g || 'c')) %% %(nw)s] || ' ', 6)
                     || CASE WHEN g %% 991 = 0 THEN %(rare)s || ' ' ELSE '' END
                     || w[1 + abs(hashtext(g || 'd')) %% %(nw)s],
                   (abs(hashtext(g || 'p')) %% 2000) * 10,
                   CASE WHEN g %% 20 = 0 THEN 'active' ELSE 'archived' END,
                   %(t0)s::timestamptz + g * interval '1 minute',
                   jsonb_build_object('color', (ARRAY['red','blue','green','black','white','grey','teal'])[1 + g %% 7],
                                      'size', (ARRAY['S','M','L','XL','XXL'])[1 + (g / 7) %% 5],
                                      'brand', 'b' || (g %% 50), 'stock', g %% 13),
                   tstzrange(%(t0)s::timestamptz + g * interval '1 minute',
                             %(t0)s::timestamptz + g * interval '1 minute' + (1 + g %% 48) * interval '1 hour'),
                   NULL
            FROM generate_series(1, %(n)s) AS g, (SELECT %(words)s::text[] AS w) AS words
            """,
            {"n": rows, "nw": len(WORDS), "rare": RARE, "t0": T0, "words": WORDS},
        )
        cur.execute("UPDATE bookstore_listing SET search = to_tsvector('simple', title || ' ' || body)")
        SeedState.objects.update_or_create(key="listing", defaults={"fingerprint": fingerprint})
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE bookstore_listing")
    return True


def lab_tables() -> list[str]:
    """Every table this scenario creates: the base copy, one per (query class, index variant), the
    booking table of the exclusion demo."""
    return ["ix_base", "ix_booking", *(f"ix_{case}_{name}" for case, qc in QUERIES.items() for name in qc.variants)]


def model_for(table: str):
    """An unmanaged model over a copy of Listing. Django's app registry holds each model once per
    process, so a model made earlier for the table is looked up there, never made twice."""
    from django.apps import apps
    from django.db import models

    from labs.bookstore.models import Listing

    name = f"Ix_{table}"
    try:
        return apps.get_registered_model("bookstore", name)
    except LookupError:
        pass
    attrs = {"__module__": __name__,
             "Meta": type("Meta", (), {"db_table": table, "managed": False, "app_label": "bookstore"})}
    for f in Listing._meta.local_fields:
        attrs[f.name] = f.clone()
    return type(name, (models.Model,), attrs)


def ensure_copy(table: str) -> None:
    """A copy of the listing table, same rows in the same physical order, primary key only."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", [table])
        if cur.fetchone()[0] is not None:
            return
        cur.execute(f'CREATE TABLE "{table}" (LIKE bookstore_listing INCLUDING DEFAULTS)')
        cur.execute(f'INSERT INTO "{table}" SELECT * FROM bookstore_listing ORDER BY id')
        cur.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY (id)')
        cur.execute(f'VACUUM ANALYZE "{table}"')


def _drop_indexes(table: str) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE '%%pkey'", [table])
        for (name,) in cur.fetchall():
            cur.execute(f'DROP INDEX "{name}"')


def plan_summary(qs) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of the exact queryset: nodes, index, rows, buffers."""
    import json

    from harness.measure.counters import walk_plan

    raw = qs.explain(format="json", analyze=True, buffers=True)
    plan = json.loads(raw)[0]["Plan"] if isinstance(raw, str) else raw[0]["Plan"]
    nodes, indexes = walk_plan(plan)
    return {"top_node": plan["Node Type"], "nodes": nodes, "indexes": indexes,
            "rows": plan.get("Actual Rows"), "shared_hit": plan.get("Shared Hit Blocks"),
            "shared_read": plan.get("Shared Read Blocks"), "heap_fetches": _heap_fetches(plan)}


def _heap_fetches(plan: dict) -> int | None:
    if "Heap Fetches" in plan:
        return plan["Heap Fetches"]
    for child in plan.get("Plans", ()):
        found = _heap_fetches(child)
        if found is not None:
            return found
    return None


def _insert_cost_ms(table: str, rows: int = 1000) -> float:
    """Milliseconds to insert `rows` rows (then rolled back): what the index costs writes."""
    from django.db import connection, transaction

    with transaction.atomic():
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            cur.execute(f'INSERT INTO "{table}" SELECT id + 10000000, sku, code, title, body, price, status, '
                        f"created_at, attrs, period, search FROM bookstore_listing WHERE id <= %s", [rows])
        elapsed = time.perf_counter() - t0
        transaction.set_rollback(True)
    return round(elapsed * 1000, 2)


def index_name_for(case: str, variant: str) -> str:
    """Index names share the namespace of tables: never the copy's own name."""
    return f"idx_{case[:8]}_{variant}"[:30]


def _variant(case: str, name: str, qc: QueryClass):
    table = "ix_base" if name == "seq_scan" else f"ix_{case}_{name}"
    index_name = index_name_for(case, name)

    def make(ctx: Context):
        from django.db import connection

        model = model_for(table)
        query = _q_fts if (case == "fulltext" and name != "seq_scan") else qc.query
        if ctx.counting:
            m = ctx.metrics
            if name != "seq_scan":
                _drop_indexes(table)
                index = qc.variants[name](index_name)
                t0 = time.perf_counter()
                with connection.schema_editor() as editor:
                    editor.add_index(model, index)
                m["build_s"] = round(time.perf_counter() - t0, 3)
                with connection.cursor() as cur:
                    cur.execute(f'VACUUM ANALYZE "{table}"')  # visibility map for index-only scans, fresh stats
                    cur.execute("SELECT pg_relation_size(%s)", [index_name])
                    m["index_kib"] = round(cur.fetchone()[0] / 1024)
            with connection.cursor() as cur:
                cur.execute("SELECT pg_relation_size(%s)", [table])
                m["table_kib"] = round(cur.fetchone()[0] / 1024)
            plan = plan_summary(query(model, qc.params[0]))
            m.update(top_node=plan["top_node"], index_used=",".join(plan["indexes"]) or "—",
                     plan_nodes=" > ".join(plan["nodes"]), plan_rows=plan["rows"], shared_hit=plan["shared_hit"],
                     shared_read=plan["shared_read"], heap_fetches=plan["heap_fetches"])
            m["insert_ms_per_1k"] = _insert_cost_ms(table)
            if case == "overlap" and name == "gist":
                m["exclusion_rejects_overlap"] = exclusion_demo()

        def unit():
            return [qc.digest(list(query(model, p))) for p in qc.params]
        return unit
    return make


def plan_nodes(m: dict) -> list[str]:
    """The plan's node types, exactly ("Index Scan" is not "Bitmap Index Scan")."""
    return [n for n in m.get("plan_nodes", "").split(" > ") if n]


def _plan_check(variant: str, index_name: str, nodes: tuple[str, ...], forbid: tuple[str, ...] = ()) -> Check:
    """The plan has one of `nodes` (matched as whole node types) on `index_name`, and none of `forbid`
    (an ORDER BY … LIMIT served by a B-tree has no Sort: the index returns rows in order)."""
    def fn(runs):
        m = runs[variant].metrics
        used = m.get("index_used", "")
        plan = plan_nodes(m)
        banned = [n for n in plan if n in forbid]
        ok = index_name in used.split(",") and any(n in nodes for n in plan) and not banned
        return ok, (f"plan: {' > '.join(plan)} using {used} (expected {'/'.join(nodes)} on {index_name}"
                    + (f", no {'/'.join(forbid)}" if forbid else "") + ")")
    return Check(f"plan uses {index_name}", variant, fn)


def _seq_check() -> Check:
    def fn(runs):
        m = runs["seq_scan"].metrics
        ok = "Seq Scan" in plan_nodes(m) and m.get("index_used") == "—"
        return ok, f"plan: {m.get('plan_nodes')}"
    return Check("baseline does a Seq Scan", "seq_scan", fn)


def exclusion_demo() -> bool:
    """ExclusionConstraint: two bookings of one room may not overlap. True if PostgreSQL refused."""
    from django.apps import apps
    from django.contrib.postgres.constraints import ExclusionConstraint
    from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
    from django.db import IntegrityError, connection, models, transaction
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    try:  # made once per process: Django's app registry holds it
        booking = apps.get_registered_model("bookstore", "IxBooking")
    except LookupError:
        attrs = {"__module__": __name__, "room": models.IntegerField(), "during": DateTimeRangeField(),
                 "Meta": type("Meta", (), {"db_table": "ix_booking", "managed": False, "app_label": "bookstore"})}
        booking = type("IxBooking", (models.Model,), attrs)
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ix_booking")
    with connection.schema_editor() as editor:
        editor.create_model(booking)
        editor.add_constraint(booking, ExclusionConstraint(
            name="ix_booking_no_overlap",
            expressions=[("room", RangeOperators.EQUAL), ("during", RangeOperators.OVERLAPS)]))
    booking.objects.create(room=1, during=DateTimeTZRange(T0, T0 + dt.timedelta(hours=2)))
    booking.objects.create(room=2, during=DateTimeTZRange(T0, T0 + dt.timedelta(hours=2)))  # other room: fine
    try:
        with transaction.atomic():
            booking.objects.create(room=1, during=DateTimeTZRange(T0 + dt.timedelta(hours=1),
                                                                  T0 + dt.timedelta(hours=3)))
    except IntegrityError:
        return True
    return False


def cases(params) -> list[Case]:
    out = []
    for case in params["queries"]:
        qc = QUERIES[case]
        names = ["seq_scan", *qc.variants]
        checks = [_seq_check(), *(same_result_as(n, "seq_scan") for n in names[1:]),
                  *(_plan_check(n, index_name_for(case, n), qc.expect[n], qc.forbid) for n in names[1:])]
        if case == "overlap":
            checks.append(metric_check("gist", "exclusion_rejects_overlap", lambda v: v is True,
                                       "True (ExclusionConstraint refused a double booking)"))
        out.append(Case(case, {"query": case, "rows": params["rows"]}, "seq_scan",
                        tuple(Variant(n, _variant(case, n, qc)) for n in names), tuple(checks),
                        title=f"{case} · {qc.title} · {params['rows']:,} rows",
                        columns=("top_node", "index_kib", "build_s", "insert_ms_per_1k", "shared_hit")))
    return out


def setup(ctx: Context) -> None:
    seed_listings(ctx.params["rows"])
    ensure_copy("ix_base")
    _drop_indexes("ix_base")
    for case in ctx.params["queries"]:
        for name in QUERIES[case].variants:
            ensure_copy(f"ix_{case}_{name}")


def summarize(result) -> list[str]:
    lines = []
    for case in result.cases:
        base = case.variants.get("seq_scan")
        for v in case.variants.values():
            if v.name == "seq_scan" or not v.ratio or not base or not base.median_s:
                continue
            lines.append(f"{case.name}: {v.name} ({v.metrics.get('top_node')}, {v.metrics.get('index_kib')} KiB) "
                         f"answered in {v.median_s * 1000:.3g} ms vs {base.median_s * 1000:.3g} ms with a Seq Scan "
                         f"({1 / v.ratio:.1f}× faster); inserts cost {v.metrics.get('insert_ms_per_1k')} ms per 1k "
                         f"rows vs {base.metrics.get('insert_ms_per_1k')} without.")
        sizes = {n: v.metrics.get("index_kib") for n, v in case.variants.items() if v.metrics.get("index_kib")}
        if case.name == "time_range" and sizes.get("brin") and sizes.get("btree"):
            lines.append(f"BRIN was {sizes['brin'] / sizes['btree']:.1%} of the B-tree's size.")
        if case.name == "jsonb" and sizes.get("gin_jsonb_path_ops") and sizes.get("gin_jsonb_ops"):
            factor = sizes["gin_jsonb_ops"] / sizes["gin_jsonb_path_ops"]
            lines.append(f"GIN jsonb_path_ops ({sizes['gin_jsonb_path_ops']} KiB) was "
                         + (f"{factor:.1f}× smaller than" if factor > 1 else f"{1 / factor:.1f}× larger than"
                            if factor < 1 else "the same size as") + f" jsonb_ops ({sizes['gin_jsonb_ops']} KiB).")
        if case.name == "partial" and sizes.get("partial") and sizes.get("full"):
            lines.append(f"The partial index was {sizes['partial'] / sizes['full']:.1%} of the full one's size.")
        gist = case.variants.get("gist")
        if case.name == "overlap" and gist and "exclusion_rejects_overlap" in gist.metrics:
            lines.append("ExclusionConstraint (room =, period &&) " + (
                "refused an overlapping booking." if gist.metrics["exclusion_rejects_overlap"]
                else "did NOT refuse an overlapping booking in this run."))
    return lines


SCENARIO = Scenario(
    name="indexes",
    title="PostgreSQL index types, verified by the plan",
    requires=frozenset({"postgres"}),
    profiles={
        "quick": {"rows": 100_000, "queries": tuple(QUERIES)},
        "full": {"rows": 2_000_000, "queries": tuple(QUERIES)},
    },
    cases=cases,
    setup=setup,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(Metric("top_node", "plan", kind="exact", better=None, description="top node of the query's plan"),
             Metric("index_used", "index", kind="exact", better=None),
             Metric("plan_nodes", "plan nodes", better=None),
             Metric("plan_rows", "plan rows"),
             Metric("index_kib", "index", "KiB", description="size of the index on disk"),
             Metric("table_kib", "table", "KiB"),
             Metric("build_s", "build", "s", description="CREATE INDEX time"),
             Metric("insert_ms_per_1k", "ins ms/1k", "ms", description="time to insert 1,000 rows with the index"),
             Metric("shared_hit", "buf hit", description="shared buffers hit by the query (EXPLAIN BUFFERS)"),
             Metric("shared_read", "buf read"),
             Metric("heap_fetches", "heap fetches", description="heap fetches of an index-only scan"),
             Metric("exclusion_rejects_overlap", "rejects overlap", better=None)),
)
