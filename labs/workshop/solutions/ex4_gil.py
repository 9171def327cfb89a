"""EXERCISE 4 — processes for CPU-bound Python (reference solution).

One process pool, created on first use and reused: starting processes costs more than scoring
a batch. 'forkserver' starts workers from a clean process (no inherited sockets or locks).
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

_POOL: ProcessPoolExecutor | None = None


def score(batch: int) -> int:
    total = 0
    for i in range(40_000):
        total = (total * 31 + (i * batch) % 97) % 1_000_003
    return total


def _pool() -> ProcessPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ProcessPoolExecutor(max_workers=os.cpu_count() or 2,
                                    mp_context=multiprocessing.get_context("forkserver"))
    return _POOL


def score_all(batches: list[int]) -> list[int]:
    return list(_pool().map(score, batches))
