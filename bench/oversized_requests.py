"""The gateway's memory under oversized requests: ``python -m gateway`` alone, its RSS before and after.

    .venv/bin/python -m bench.oversized_requests [--header-mb 1] [--body-mb 30] [--connections 3]

Sends, on ``--connections`` connections at once, a request head with a header of ``--header-mb`` MB to
``/health``, then a ``--body-mb`` MB JSON body to ``/api/chat`` (Content-Length), then the same body
chunked; prints each answer's status (``reset`` when the connection was reset before an answer arrived) and
the gateway's RSS before, at its highest during the requests, and after. Redis is not needed: nothing here
reaches it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.stack import ROOT, free_port, rss_mb

MB = 1024 * 1024


async def send(port: int, head: bytes, chunks: int, chunk: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            for _ in range(chunks):
                writer.write(chunk)
                await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(), 300)
        except ConnectionError:
            return "reset"
        return answer.split(b" ", 2)[1].decode() if answer else "closed"
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-oversized-") as data_dir:
        env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "DATA_DIR": data_dir, "LOG_LEVEL": "WARNING"}
        env["REDIS_URL"] = f"unix://{Path(data_dir) / 'none.sock'}"
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", env=env, cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url) as http:
                for _ in range(300):
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/health")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
                for _ in range(20):
                    await http.get("/health")
                    await http.post("/api/chat", content=b"{}")
            before = peak = rss_mb(proc.pid)

            async def watch() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, rss_mb(proc.pid))
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch())
            header = b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (args.header_mb * MB) + b"\r\n\r\n"
            post = b"POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            body = args.body_mb * MB
            announced = post + b"content-length: %d\r\n\r\n" % body
            chunked = post + b"transfer-encoding: chunked\r\n\r\n"
            for name, head, chunks, chunk in (
                (f"{args.header_mb} MB header to /health", header, 0, b""),
                (f"{args.body_mb} MB body to /api/chat (Content-Length)", announced, args.body_mb, b" " * MB),
                (
                    f"{args.body_mb} MB body to /api/chat (chunked)",
                    chunked,
                    args.body_mb,
                    b"%x\r\n%s\r\n" % (MB, b" " * MB),
                ),
            ):
                answers = await asyncio.gather(*(send(port, head, chunks, chunk) for _ in range(args.connections)))
                print(f"{name}, {args.connections} at once: {', '.join(answers)}; RSS now {rss_mb(proc.pid):.1f} MB")
            watcher.cancel()
            after = rss_mb(proc.pid)
            print(f"gateway RSS: before {before:.1f} MB, peak {peak:.1f} MB, after {after:.1f} MB")
        finally:
            proc.terminate()
            await proc.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--header-mb", type=int, default=1)
    parser.add_argument("--body-mb", type=int, default=30)
    parser.add_argument("--connections", type=int, default=3)
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
