"""Views for the async_views scenario: waiting on an upstream service, and the ORM, each as a
sync view and as an async view. LABS_UPSTREAM_URL points at harness.measure.upstream."""
from __future__ import annotations

import asyncio
import os
import random
import urllib.parse
import urllib.request

from asgiref.sync import sync_to_async
from django.http import JsonResponse

from labs.bookstore.models import World


def _upstream() -> urllib.parse.SplitResult:
    return urllib.parse.urlsplit(os.environ.get("LABS_UPSTREAM_URL", "http://127.0.0.1:9/"))


def upstream_sync(request):
    """A blocking HTTP call: the worker (or thread) waits with it."""
    with urllib.request.urlopen(_upstream().geturl(), timeout=10) as resp:
        data = resp.read()
    return JsonResponse({"upstream": len(data)})


async def upstream_async(request):
    """The same call awaited: the event loop serves other requests meanwhile."""
    u = _upstream()
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    writer.write(f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.hostname}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    return JsonResponse({"upstream": len(body)})


def orm_sync(request):
    w = World.objects.get(id=random.randint(1, 10_000))
    return JsonResponse({"id": w.id, "randomNumber": w.random_number})


async def orm_async(request):
    """Django's async ORM API (aget): still a sync driver call in a thread underneath."""
    w = await World.objects.aget(id=random.randint(1, 10_000))
    return JsonResponse({"id": w.id, "randomNumber": w.random_number})


async def orm_sync_to_async(request):
    w = await sync_to_async(World.objects.get)(id=random.randint(1, 10_000))
    return JsonResponse({"id": w.id, "randomNumber": w.random_number})
