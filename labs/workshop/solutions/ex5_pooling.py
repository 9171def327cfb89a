"""EXERCISE 5 — a pool smaller than the limit, with a timeout long enough to wait (reference)."""


def connection_strategy() -> dict:
    # 10 connections (well under the 20 allowed), and clients wait their turn instead of failing;
    # {"mode": "pgbouncer", "pool_size": 10} works too, and across processes.
    return {"mode": "pool", "max_size": 10, "timeout_s": 30}
