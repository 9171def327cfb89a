"""EXERCISE 4 — the GIL.

`score_all(batches)` scores batches of orders with pure-Python code, in a thread pool — but
threads cannot run Python bytecode in parallel, so it is no faster than a loop. Make it use
the machine's cores (keep `score` as it is, keep the results and their order).

Check your fix:  labs check 4
"""
from concurrent.futures import ThreadPoolExecutor


def score(batch: int) -> int:
    total = 0
    for i in range(40_000):
        total = (total * 31 + (i * batch) % 97) % 1_000_003
    return total


def score_all(batches: list[int]) -> list[int]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(score, batches))
