"""A stand-in upstream service for the async scenario: answers every GET after a fixed delay.

    python -m harness.measure.upstream --port PORT --delay-ms 20

Loopback only; asyncio, so it can hold thousands of waiting requests at once (it is never the
bottleneck it simulates).
"""
from __future__ import annotations

import argparse
import asyncio

BODY = b'{"upstream": "ok"}'
"""What every answer carries (the async views report its length, so their answers can be checked)."""


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            close = line.rstrip().endswith(b"HTTP/1.0")
            while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                if header.lower().startswith(b"connection:") and b"close" in header.lower():
                    close = True
            await asyncio.sleep(delay_s)
            body = BODY
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
