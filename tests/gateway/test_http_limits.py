"""HTTP limits of the gateway as uvicorn serves it: heads, bodies, slow clients and connections per process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import websockets

from tests.conftest import SettingsFactory
from tests.ports import free_port
from tests.stack import gateway_process, rss_bytes, running_gateway

MB = 1024 * 1024


@contextlib.asynccontextmanager
async def raw_connection(url: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` whole, then read until the server closes the connection."""
    async with raw_connection(url) as (reader, writer):
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)


async def send_until_refused(url: str, head: bytes, body_chunks: int, chunk: bytes) -> bytes:
    """Send ``head`` then up to ``body_chunks`` chunks while the server lets us; what it answered (its answer
    can be lost to a reset when it closed with our bytes still unread: then b"")."""
    async with raw_connection(url) as (reader, writer):
        try:
            writer.write(head)
            for _ in range(body_chunks):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        try:
            return await asyncio.wait_for(reader.read(), 30)
        except ConnectionError:
            return b""


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def test_huge_heads_and_bodies_are_refused_without_the_gateway_growing(make_settings: SettingsFactory) -> None:
    """A 1 MB header to /health, a 30 MB body to /api/chat (announced, and chunked), against
    ``python -m gateway``: refused at the limit, and the process's memory does not grow with them."""
    settings = make_settings(host="127.0.0.1", port=free_port())
    async with gateway_process(settings) as (url, pid):
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(20):  # warm up the paths these requests take
                assert (await http.get("/health")).status_code == 200
                assert (await http.post("/api/chat", content=b"{}")).status_code == 422
        before = rss_bytes(pid)

        big_header = b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * MB + b"\r\n\r\n"
        answers = await asyncio.gather(*(send_until_refused(url, big_header, 0, b"") for _ in range(3)))
        assert all(a == b"" or status_of(a) == 431 for a in answers), answers

        announced = b"POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        refused = await exchange(url, announced + b"content-length: %d\r\n\r\n" % (30 * MB))
        assert status_of(refused) == 413, "refused from Content-Length alone, before any of the body"

        chunked = announced + b"transfer-encoding: chunked\r\n\r\n"
        chunk = b"%x\r\n%s\r\n" % (MB, b" " * MB)
        answers = await asyncio.gather(*(send_until_refused(url, chunked, 30, chunk) for _ in range(3)))
        assert all(a == b"" or status_of(a) == 413 for a in answers), answers

        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/health")).status_code == 200
        grown = rss_bytes(pid) - before
    assert grown < 10 * MB, f"the gateway grew by {grown / MB:.1f} MB"


async def test_head_limit_answers_431_and_a_body_limit_413(make_settings: SettingsFactory) -> None:
    settings = make_settings(max_http_head_bytes=8192, max_request_body_bytes=4096)
    async with running_gateway(settings) as url:
        fits = await exchange(url, b"GET /health HTTP/1.1\r\nhost: x\r\nx-a: " + b"a" * 7000 + b"\r\n\r\n")
        over = await exchange(url, b"GET /health HTTP/1.1\r\nhost: x\r\nx-a: " + b"a" * 9000 + b"\r\n\r\n")
        body = b'{"question": "' + b"x" * 5000 + b'"}'
        too_big = await exchange(
            url,
            b"POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body),
        )
    assert status_of(fits) == 200 and b"connection: close" in fits.lower()
    assert status_of(over) == 431
    assert status_of(too_big) == 413


async def trickle_until_closed(url: str, first: bytes, trickle: bytes) -> bytes:
    """Send ``first``, then ``trickle`` every 0.2 s until the server closes; everything it answered. On the
    socket itself rather than streams: once the server has answered and closed, a write of ours draws a
    reset, and a stream (or transport) then drops the answer it had not handed over yet; ``recv`` still
    returns every byte the kernel holds before it reports the reset."""
    loop = asyncio.get_running_loop()
    host, port = url.removeprefix("http://").split(":")
    answer = b""
    with socket.socket() as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, int(port)))
        await loop.sock_sendall(sock, first)
        sending = True
        while True:
            if sending:
                try:
                    await loop.sock_sendall(sock, trickle)
                except ConnectionError:
                    sending = False  # the server has closed: read what it said
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.2)
            except TimeoutError:
                continue
            except ConnectionError:
                return answer
            if not data:
                return answer
            answer += data


async def test_a_trickling_head_or_body_is_cut_off(make_settings: SettingsFactory) -> None:
    """A client that sends its head (or its body) a few bytes at a time gets 408 and a closed connection
    once ``HTTP_REQUEST_TIMEOUT_S`` has passed, however long it would go on."""
    async with running_gateway(make_settings(http_request_timeout_s=1.0)) as url:
        slow_body = b"POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900\r\n"
        slow_body += b"\r\n"
        for first, trickle in ((b"GET /health HTTP/1.1\r\n", b"x-a: b\r\n"), (slow_body + b"{", b" ")):
            async with asyncio.timeout(20):
                answer = await trickle_until_closed(url, first, trickle)
            assert status_of(answer) == 408, answer


async def test_http_connections_per_process_are_bounded_and_sockets_do_not_count(
    make_settings: SettingsFactory,
) -> None:
    async with running_gateway(make_settings(max_http_connections=3)) as url:
        sockets = [await websockets.connect(url.replace("http", "ws", 1) + "/ws/chat") for _ in range(5)]
        held = [await asyncio.open_connection(*url.removeprefix("http://").split(":")) for _ in range(3)]
        refused = await exchange(url, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        assert status_of(refused) == 503, refused
        for _, writer in held:
            writer.close()
        async with httpx.AsyncClient(base_url=url) as http, asyncio.timeout(10):
            while (await http.get("/health")).status_code != 200:  # noqa: ASYNC110 - the server's closes have no event here
                await asyncio.sleep(0.05)
        for socket in sockets:
            await socket.close()
