"""TechEmpower-style endpoints (json, db, queries, fortunes) plus /cpu and /io for the load
scenarios. Behaviour follows TechEmpower's verifier: JSON content types, a `queries` parameter
clamped to 1..500 (missing, 0 or non-numeric -> 1), fortunes sorted with one added at request time.
"""
from __future__ import annotations

import asyncio
import random
import time

from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from labs.bookstore.models import Fortune, World

UPSTREAM_MS = 20
"""Simulated upstream latency of /io (an HTTP call to another service, say)."""


def clamp_queries(request) -> int:
    raw = request.GET.get("queries", request.GET.get("n", "1"))
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return 1
    return max(1, min(500, value))


def _random_id() -> int:
    return random.randint(1, 10_000)


def json_view(request):
    return JsonResponse({"message": "Hello, World!"})


def db_view(request):
    world = World.objects.get(id=_random_id())
    return JsonResponse({"id": world.id, "randomNumber": world.random_number})


def queries_view(request):
    worlds = [World.objects.get(id=_random_id()) for _ in range(clamp_queries(request))]
    return JsonResponse([{"id": w.id, "randomNumber": w.random_number} for w in worlds], safe=False)


def fortunes_view(request):
    fortunes = list(Fortune.objects.all())
    fortunes.append(Fortune(id=0, message="Additional fortune added at request time."))
    fortunes.sort(key=lambda f: f.message)
    html = render_to_string("bookstore/fortunes.html", {"fortunes": fortunes})
    return HttpResponse(html, content_type="text/html; charset=utf-8")


def cpu_view(request):
    """Pure-Python work under the GIL (the same task as the gil scenario's cpu_python)."""
    from scenarios.gil_tasks import cpu_python

    return JsonResponse({"checksum": cpu_python(7, 1500)})


def io_view(request):
    """A query, then waiting on a (simulated) upstream service."""
    world = World.objects.get(id=_random_id())
    time.sleep(UPSTREAM_MS / 1000)
    return JsonResponse({"id": world.id, "randomNumber": world.random_number, "upstream_ms": UPSTREAM_MS})


async def aio_view(request):
    """/io as an async view: the wait does not hold a worker thread (ASGI)."""
    world = await World.objects.aget(id=_random_id())
    await asyncio.sleep(UPSTREAM_MS / 1000)
    return JsonResponse({"id": world.id, "randomNumber": world.random_number, "upstream_ms": UPSTREAM_MS})
