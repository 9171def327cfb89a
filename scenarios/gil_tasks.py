"""Task functions for the `gil` scenario, importable by worker processes (forkserver/spawn).

Every task is deterministic and returns something checkable, so each executor's answers are
compared with the sequential baseline. Connections are per thread / per process, opened lazily.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time

_local = threading.local()
_opened: list = []
_opened_lock = threading.Lock()


# -- CPU-bound ------------------------------------------------------------------------------------
def cpu_python(seed: int, size: int = 2500) -> int:
    """Pure Python: build and validate `size` order-like dicts, return a checksum. Holds the GIL."""
    total = 0
    for i in range(size):
        order = {"id": seed * 100_000 + i, "qty": (i * 7 + seed) % 13 + 1, "price": (i * 31 + seed) % 997,
                 "sku": f"SKU-{(i * 17 + seed) % 5000:05d}"}
        if order["qty"] > 0 and order["price"] >= 0 and order["sku"].startswith("SKU-"):
            total = (total * 31 + order["qty"] * order["price"] + len(order["sku"])) % 1_000_000_007
    return total


def cpu_c(seed: int, iterations: int = 20_000) -> str:
    """C code that releases the GIL: PBKDF2-HMAC-SHA256 (OpenSSL)."""
    return hashlib.pbkdf2_hmac("sha256", b"perf-lab-password", seed.to_bytes(8, "big"), iterations).hex()


# -- moving data: pickled chunks vs shared memory --------------------------------------------------
def make_blob(total_bytes: int, seed: int = 1) -> bytes:
    """Deterministic pseudo-random bytes."""
    import random

    return random.Random(seed).randbytes(total_bytes)


def digest_bytes(data: bytes) -> str:
    """SHA-256 of a chunk sent to the worker (pickled through a pipe)."""
    return hashlib.sha256(data).hexdigest()


def digest_shared(name: str, offset: int, length: int) -> str:
    """SHA-256 of a slice of a shared-memory block: only its name and bounds travel."""
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(name=name)
    try:
        return hashlib.sha256(shm.buf[offset:offset + length]).hexdigest()
    finally:
        shm.close()


# -- I/O-bound on the real stack -------------------------------------------------------------------
def _remember(conn) -> None:
    with _opened_lock:
        _opened.append(conn)


def _pg():
    conn = getattr(_local, "pg", None)
    if conn is None:
        import psycopg

        conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        _local.pg = conn
        _remember(conn)
    return conn


def _redis():
    client = getattr(_local, "redis", None)
    if client is None:
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        _local.redis = client
        _remember(client)
    return client


def io_postgres(seed: int, sleep_ms: float = 4.0) -> int:
    """One query that waits in PostgreSQL (pg_sleep stands for a slow query) and returns a row."""
    row = _pg().execute("SELECT %s::int * 3 FROM pg_sleep(%s)", [seed, sleep_ms / 1000]).fetchone()
    return int(row[0])


def io_redis(seed: int, round_trips: int = 20) -> int:
    """Redis round trips: SET then GET of the lab's own keys."""
    client = _redis()
    total = 0
    for i in range(round_trips):
        key = f"labs:gil:{seed}:{i}"
        client.set(key, seed + i, ex=60)
        total += int(client.get(key))
    return total


def io_sleep(seed: int, sleep_ms: float = 4.0) -> int:
    """Control: pure waiting, no server involved."""
    time.sleep(sleep_ms / 1000)
    return seed


def noop(seed: int) -> int:
    return seed


def close_connections() -> None:
    with _opened_lock:
        for conn in _opened:
            try:
                conn.close()
            except Exception:
                pass
        _opened.clear()
    for attr in ("pg", "redis"):
        if hasattr(_local, attr):
            delattr(_local, attr)


# -- asyncio counterparts ---------------------------------------------------------------------------
async def aio_postgres(conn, seed: int, sleep_ms: float = 4.0) -> int:
    cur = await conn.execute("SELECT %s::int * 3 FROM pg_sleep(%s)", [seed, sleep_ms / 1000])
    row = await cur.fetchone()
    return int(row[0])


async def aio_redis(client, seed: int, round_trips: int = 20) -> int:
    total = 0
    for i in range(round_trips):
        key = f"labs:gil:{seed}:{i}"
        await client.set(key, seed + i, ex=60)
        total += int(await client.get(key))
    return total


async def aio_sleep(_conn, seed: int, sleep_ms: float = 4.0) -> int:
    import asyncio

    await asyncio.sleep(sleep_ms / 1000)
    return seed
