"""A stand-in upstream service: answers every GET after a fixed delay.

    python -m harness.measure.upstream --port PORT --delay-ms 20

Loopback only; asyncio, so it can hold thousands of waiting requests at once (it is never the
bottleneck it simulates). For the tasks scenario's retries it can also be flaky, deterministically:
`GET /flaky?key=K&fail=F` answers 503 to the first F requests for key K, then 200; `GET /stats`
says how many requests it has had and the most it had in any 100 ms (its peak load, per second;
retries - repeated keys - also on their own);
`GET /reset` forgets both.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.parse

BODY = b'{"upstream": "ok"}'
"""What every answer carries (the async views report its length, so their answers can be checked)."""


class _Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.per_key: dict[str, int] = {}
        self.buckets: dict[int, int] = {}
        self.retry_buckets: dict[int, int] = {}

    def hit(self) -> None:
        self.requests += 1
        bucket = int(time.monotonic() * 10)
        self.buckets[bucket] = self.buckets.get(bucket, 0) + 1

    def retried(self) -> None:
        """A request for a key seen before (a retry), counted apart: its own peak."""
        bucket = int(time.monotonic() * 10)
        self.retry_buckets[bucket] = self.retry_buckets.get(bucket, 0) + 1

    def stats(self) -> bytes:
        return json.dumps({"requests": self.requests, "peak_rps": 10 * max(self.buckets.values(), default=0),
                           "retry_peak_rps": 10 * max(self.retry_buckets.values(), default=0)}).encode()


COUNTS = _Counts()


def _answer(target: str) -> tuple[bytes, bytes]:
    """(status line, body) for a request target."""
    url = urllib.parse.urlsplit(target)
    if url.path == "/stats":
        return b"200 OK", COUNTS.stats()
    if url.path == "/reset":
        COUNTS.reset()
        return b"200 OK", b"{}"
    COUNTS.hit()
    if url.path == "/flaky":
        q = dict(urllib.parse.parse_qsl(url.query))
        key, fail = q.get("key", ""), int(q.get("fail", "0"))
        seen = COUNTS.per_key[key] = COUNTS.per_key.get(key, 0) + 1
        if seen > 1:
            COUNTS.retried()
        if seen <= fail:
            return b"503 Service Unavailable", b'{"upstream": "busy"}'
    return b"200 OK", BODY


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            close = line.rstrip().endswith(b"HTTP/1.0")
            parts = line.split()
            target = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                if header.lower().startswith(b"connection:") and b"close" in header.lower():
                    close = True
            status, body = _answer(target)
            if status.startswith(b"200") and not target.startswith(("/stats", "/reset")):
                await asyncio.sleep(delay_s)
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + (b"\r\nConnection: close" if close else b"")
                         + b"\r\n\r\n" + body)
            await writer.drain()
            if close:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(port: int, delay_s: float) -> None:
    server = await asyncio.start_server(lambda r, w: _handle(r, w, delay_s), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def start(artifacts, delay_ms: float):
    """Start the stand-in on a free loopback port (a child that dies with us): (its URL, stop)."""
    import sys

    from harness.stack import procs

    port = procs.free_port()
    log = artifacts / "upstream.log"
    proc = procs.start([sys.executable, "-m", "harness.measure.upstream", "--port", str(port), "--delay-ms",
                        str(delay_ms)], log)
    try:
        procs.wait_ready("the upstream stand-in", lambda: procs.port_open(port), proc, log, timeout_s=15)
    except BaseException:
        procs.stop_child(proc)
        raise
    return f"http://127.0.0.1:{port}/", lambda: procs.stop_child(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
