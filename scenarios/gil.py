"""Threads vs processes vs asyncio, against the cores you have.

One unit of work = a fixed batch of tasks (the same for every executor, results checked),
done by: sequential (the baseline), ThreadPoolExecutor(n), ProcessPoolExecutor(n) (forkserver:
no inherited sockets or locks), asyncio (I/O workloads), and processes reading a shared-memory
block instead of receiving pickled chunks (data workload). Pools and connections are created
once per variant, outside the timed units; their start cost is reported separately.

Speedup = sequential time / variant time; efficiency = speedup / min(n, cores), so 100 % means
the variant used every core it could. On a GIL build, pure-Python CPU work cannot scale with
threads; C code that releases the GIL, and waiting on I/O, can.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from harness.scenario import (
    Case,
    Context,
    Metric,
    Scenario,
    SeriesChart,
    Variant,
    same_result_as,
)
from scenarios import gil_tasks as tasks

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
CORES = os.cpu_count() or 1


def gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check else True


WORKLOADS: dict[str, dict[str, Any]] = {
    "cpu_python": {"fn": tasks.cpu_python, "expect": "threads should NOT scale (the GIL serialises Python "
                   "bytecode); processes should approach min(n, cores)", "asyncio": None},
    "cpu_c": {"fn": tasks.cpu_c, "expect": "threads and processes should both scale to min(n, cores): "
              "OpenSSL releases the GIL", "asyncio": None},
    "data": {"fn": tasks.digest_bytes, "expect": "shared memory should beat pickling chunks to processes; "
             "threads share memory for free (hashlib releases the GIL)", "asyncio": None},
    "io_postgres": {"fn": tasks.io_postgres, "expect": "threads and asyncio should scale far past the core "
                    "count: the GIL is released while waiting", "asyncio": tasks.aio_postgres},
    "io_redis": {"fn": tasks.io_redis, "expect": "round trips overlap with threads/asyncio; each still pays "
                 "Python-side client work under the GIL", "asyncio": tasks.aio_redis},
    "sleep": {"fn": tasks.io_sleep, "expect": "pure waiting scales with any concurrency (control)",
              "asyncio": tasks.aio_sleep},
}


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _instrument(ctx: Context, run: Callable[[], Any], pids: Callable[[], list[int]]) -> Callable[[], Any]:
    """In the counting pass, add CPU seconds (ours + the pool's processes) to a metric."""
    if not ctx.counting:
        return run
    ctx.metrics.setdefault("cpu_s_per_unit", 0.0)
    calls = [0]

    def unit():
        procs = [os.getpid(), *pids()]
        before = _cpu_seconds(procs)
        out = run()
        calls[0] += 1
        spent = _cpu_seconds(procs) - before
        ctx.metrics["cpu_s_per_unit"] = round(
            (ctx.metrics["cpu_s_per_unit"] * (calls[0] - 1) + spent) / calls[0], 4)
        return out
    return unit


def _args(workload: str, n_tasks: int) -> list[int]:
    return list(range(1, n_tasks + 1))


def _sequential(workload: str, n_tasks: int):
    def make(ctx: Context):
        fn = WORKLOADS[workload]["fn"]
        if workload == "data":
            blob, size = _blob(ctx)
            run = lambda: [tasks.digest_bytes(blob[i * size:(i + 1) * size]) for i in range(n_tasks)]  # noqa: E731
        else:
            run = lambda: [fn(a) for a in _args(workload, n_tasks)]  # noqa: E731
        ctx.on_close(tasks.close_connections)
        return _instrument(ctx, run, lambda: [])
    return make


def _blob(ctx: Context) -> tuple[bytes, int]:
    size = ctx.params["chunk_kib"] * 1024
    return tasks.make_blob(size * ctx.params["tasks"]), size


def _threads(workload: str, n_tasks: int, n: int):
    def make(ctx: Context):
        fn = WORKLOADS[workload]["fn"]
        pool = ThreadPoolExecutor(n, thread_name_prefix=f"gil-{workload}")
        if workload == "data":
            blob, size = _blob(ctx)
            view = memoryview(blob)
            run = lambda: list(pool.map(tasks.digest_bytes, [view[i * size:(i + 1) * size] for i in range(n_tasks)]))  # noqa: E731
        else:
            run = lambda: list(pool.map(fn, _args(workload, n_tasks)))  # noqa: E731

        def close():
            pool.shutdown(wait=True)
            tasks.close_connections()
        ctx.on_close(close)
        return _instrument(ctx, run, lambda: [])
    return make


def _processes(workload: str, n_tasks: int, n: int, shared: bool = False):
    def make(ctx: Context):
        fn = WORKLOADS[workload]["fn"]
        t0 = time.perf_counter()
        pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(START_METHOD))
        list(pool.map(tasks.noop, range(n * 4)))  # start every worker now, outside the timed units
        if ctx.counting:
            ctx.metrics["start_s"] = round(time.perf_counter() - t0, 4)
        shm = None
        if workload == "data":
            blob, size = _blob(ctx)
            if shared:
                from multiprocessing import shared_memory

                shm = shared_memory.SharedMemory(create=True, size=len(blob))
                shm.buf[:len(blob)] = blob
                bounds = [(shm.name, i * size, size) for i in range(n_tasks)]
                run = lambda: list(pool.map(tasks.digest_shared, *zip(*bounds)))  # noqa: E731
            else:
                chunks = [blob[i * size:(i + 1) * size] for i in range(n_tasks)]
                run = lambda: list(pool.map(tasks.digest_bytes, chunks))  # noqa: E731
        else:
            run = lambda: list(pool.map(fn, _args(workload, n_tasks)))  # noqa: E731
        workers = lambda: [p.pid for p in psutil.Process().children() if p.pid in (pool._processes or {})]  # noqa: E731

        def close():
            pool.shutdown(wait=True, cancel_futures=True)
            if shm is not None:
                shm.close()
                shm.unlink()
        ctx.on_close(close)
        return _instrument(ctx, run, workers)
    return make


def _asyncio(workload: str, n_tasks: int, n: int):
    """n concurrent connections (or sleepers), each working through its share of the tasks."""
    def make(ctx: Context):
        loop = asyncio.new_event_loop()
        afn = WORKLOADS[workload]["asyncio"]

        async def connect():
            if workload == "io_postgres":
                import psycopg

                return [await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"], autocommit=True)
                        for _ in range(n)]
            if workload == "io_redis":
                import redis.asyncio as aioredis

                return [aioredis.Redis.from_url(os.environ["REDIS_URL"]) for _ in range(n)]
            return [None] * n

        conns = loop.run_until_complete(connect())
        args = _args(workload, n_tasks)

        async def lane(conn, mine):
            return [await afn(conn, a) for a in mine]

        async def batch():
            lanes = await asyncio.gather(*(lane(conns[i], args[i::n]) for i in range(n)))
            out = [None] * len(args)
            for i, results in enumerate(lanes):
                out[i::n] = results
            return out

        def close():
            async def shut():
                for c in conns:
                    if c is not None:
                        await (c.aclose() if hasattr(c, "aclose") else c.close())
            loop.run_until_complete(shut())
            loop.close()
        ctx.on_close(close)
        return _instrument(ctx, lambda: loop.run_until_complete(batch()), lambda: [])
    return make


SPEEDUP_CHART = SeriesChart("speedup", x_label="workers (n)", y_label="speedup vs sequential", ideal="cores")


def derive(case) -> dict[str, dict[str, Any]]:
    """Speedup and efficiency from the timed ratios (after measuring)."""
    out = {}
    for v in case.variants.values():
        if not v.ratio:
            continue
        n = int(v.x) if v.x is not None else 1
        speedup = 1.0 / v.ratio
        out[v.name] = {"speedup": round(speedup, 3), "efficiency": round(speedup / min(n, CORES), 3)}
    return out


def cases(params) -> list[Case]:
    out = []
    for workload in params["workloads"]:
        n_tasks = params["tasks"]
        variants = [Variant("sequential", _sequential(workload, n_tasks), "one task after another")]
        for n in params["workers"]:
            variants.append(Variant(f"threads_{n}", _threads(workload, n_tasks, n), f"ThreadPoolExecutor({n})",
                                    series="threads", x=n))
        for n in params["workers"]:
            if n <= 2 * CORES or not workload.startswith("cpu"):
                variants.append(Variant(f"processes_{n}", _processes(workload, n_tasks, n),
                                        f"ProcessPoolExecutor({n}, {START_METHOD})", series="processes", x=n))
        if workload == "data":
            for n in params["workers"]:
                if n <= 2 * CORES:
                    variants.append(Variant(f"shared_memory_{n}", _processes(workload, n_tasks, n, shared=True),
                                            f"processes reading one shared_memory block ({n})",
                                            series="shared_memory", x=n))
        if WORKLOADS[workload]["asyncio"] is not None:
            for n in params["workers"]:
                variants.append(Variant(f"asyncio_{n}", _asyncio(workload, n_tasks, n),
                                        f"asyncio with {n} concurrent connections", series="asyncio", x=n))
        checks = tuple(same_result_as(v.name, "sequential") for v in variants[1:])
        out.append(Case(workload, {"workload": workload, "tasks": n_tasks, "chunk_kib": params["chunk_kib"]},
                        "sequential", tuple(variants), checks, units=1,
                        title=f"{workload} · {n_tasks} tasks · {CORES} cores · GIL "
                              f"{'enabled' if gil_enabled() else 'DISABLED (free-threaded)'}",
                        columns=("speedup", "efficiency", "cpu_s_per_unit", "start_s"), derive=derive,
                        charts=(SPEEDUP_CHART,)))
    return out


def summarize(result) -> list[str]:
    lines = [f"{CORES} cores, GIL {'enabled' if gil_enabled() else 'disabled'}, process start method "
             f"{START_METHOD}."]
    for case in result.cases:
        v = case.variants
        best = {}
        for kind in ("threads", "processes", "asyncio", "shared_memory"):
            cands = [x for x in v.values() if x.series == kind and x.metrics.get("speedup")]
            if cands:
                best[kind] = max(cands, key=lambda x: x.metrics["speedup"])
        parts = [f"{x.name} {x.metrics['speedup']:.2f}× ({x.metrics['efficiency']:.0%} of ideal)"
                 for x in best.values()]
        verdict = _expectation_met(case.name, best)
        lines.append(f"{case.name}: best " + ", ".join(parts) + f". Expected: {WORKLOADS[case.name]['expect']}"
                     + (f" — {verdict}." if verdict else "."))
    return lines


def _expectation_met(workload: str, best: dict) -> str:
    def speed(kind: str) -> float:
        return best[kind].metrics["speedup"] if kind in best else 0.0

    if workload == "cpu_python" and gil_enabled():
        ok = speed("threads") < 1.25 and (CORES == 1 or speed("processes") > 1.3)
    elif workload == "cpu_c":
        ok = CORES == 1 or (speed("threads") > 1.3 and speed("processes") > 1.3)
    elif workload == "data":
        sm = speed("shared_memory")
        pickled = speed("processes")
        ok = sm >= pickled
    else:
        ok = max(speed("threads"), speed("asyncio")) > 1.5
    return "met" if ok else "NOT met on this run (timing expectations never fail the run)"


SCENARIO = Scenario(
    name="gil",
    title="GIL: threads vs processes vs asyncio, against the cores you have",
    requires=frozenset({"postgres", "redis"}),
    profiles={
        "quick": {"workloads": ("cpu_python", "cpu_c", "data", "io_postgres", "io_redis", "sleep"),
                  "workers": (2, 4, 8), "tasks": 16, "chunk_kib": 1024},
        "full": {"workloads": ("cpu_python", "cpu_c", "data", "io_postgres", "io_redis", "sleep"),
                 "workers": (1, 2, 4, 8), "tasks": 64, "chunk_kib": 4096},
    },
    cases=cases,
    lesson_file=Path(__file__).with_suffix(".md"),
    summarize=summarize,
    metrics=(
        Metric("speedup", "speedup", "×", better="higher", description="sequential time / this variant's time"),
        Metric("efficiency", "efficiency", better="higher", percent=True,
               description="speedup / min(workers, cores): 100 % used every core it could"),
        Metric("cpu_s_per_unit", "CPU s/unit", "s", description="CPU seconds of this process and its workers "
                                                                 "per unit of work"),
        Metric("start_s", "start s", "s", description="time to start the pool's workers (outside the timed units)"),
    ),
)
