"""The C-packing connections: the same bytes as redis-py's own packer, and real round trips over TCP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from shared.redis_connections import (
    HiredisPackingConnection,
    HiredisPackingSSLConnection,
    HiredisPackingUnixConnection,
    connection_pool,
    redis_client,
)

arguments = st.lists(
    st.one_of(st.text(max_size=40), st.binary(max_size=40), st.integers(), st.floats(allow_nan=False)),
    max_size=30,
)


@given(name=st.sampled_from(["XREAD", "EVALSHA", "SET", "CLIENT SETNAME"]), args=arguments)
@settings(max_examples=200)
def test_packs_exactly_as_redis_py_does(name: str, args: list[Any]) -> None:
    ours, theirs = HiredisPackingConnection(), Connection()
    assert b"".join(ours.pack_command(name, *args)) == b"".join(theirs.pack_command(name, *args))


async def test_round_trips_and_pipelines(redis_url: str) -> None:
    client = redis_client(redis_url)
    try:
        await client.set("packing:ä", "välue")
        assert await client.get("packing:ä") == "välue".encode()
        async with client.pipeline(transaction=True) as pipe:
            pipe.xadd("packing:stream", {"t": "delta", "e": "{}"})
            pipe.xlen("packing:stream")
            _, length = await pipe.execute()
        assert length == 1
        streams = {f"packing:none:{i}": "0-0" for i in range(200)} | {"packing:stream": "0-0"}
        ((key, entries),) = await client.xread(streams, count=10)
        assert key == b"packing:stream" and entries[0][1] == {b"t": b"delta", b"e": b"{}"}
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6390/0", HiredisPackingConnection),
        ("unix:///tmp/tutor/redis.sock", HiredisPackingUnixConnection),
        ("rediss://cache.example:6380/0", HiredisPackingSSLConnection),
    ],
)
async def test_every_scheme_gets_the_packing_connection(url: str, expected: type) -> None:
    """``from_url`` lets the scheme override a ``connection_class`` passed to it (the product's default
    Redis is a unix socket): the pool must still make packing connections."""
    pool = connection_pool(url)
    try:
        assert pool.connection_class is expected
    finally:
        await pool.disconnect()


async def test_a_pooled_command_leaves_in_its_callers_own_step(redis_url: str) -> None:
    """redis-py 5 reads under a zero timeout before handing out a pooled connection, and with a socket timeout
    it writes from a task of its own: each takes turns of the event loop, so on a busy loop every command
    waited behind all other ready callbacks before its bytes left."""
    client = redis_client(redis_url, socket_timeout=5)
    try:
        await client.ping()  # a connection exists and is idle in the pool
        sent = asyncio.Event()
        writer = client.connection_pool._available_connections[0]._writer  # type: ignore[attr-defined]
        original = writer.writelines

        def writelines(data: Any) -> None:
            sent.set()
            original(data)

        writer.writelines = writelines
        task = asyncio.create_task(client.set("prompt:key", "1"))
        await asyncio.sleep(0)  # one turn of the loop: the task's first step runs, and must reach the socket
        assert sent.is_set(), "the command waited for more than its own first step"
        assert await task
    finally:
        await client.aclose()


@pytest.mark.parametrize("turns_before_cancel", range(6))
async def test_a_cancelled_blocking_command_is_cancelled(redis_url: str, turns_before_cancel: int) -> None:
    """Whenever the cancellation comes, it ends the command (on Python 3.11, ``asyncio.wait_for`` around the
    write lost one that came as the write finished, and the pop then blocked for its whole time)."""
    client = redis_client(redis_url, socket_timeout=10)
    try:
        await client.ping()
        task = asyncio.create_task(client.execute_command("BLMPOP", 3, 1, "prompt:empty", "LEFT"))
        for _ in range(turns_before_cancel):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task], timeout=10)
        assert task.cancelled(), f"the pop returned {task.result()!r} instead of being cancelled"
    finally:
        await client.aclose()


async def test_a_connection_with_an_unread_reply_is_replaced(redis_url: str) -> None:
    client = redis_client(redis_url)
    try:
        await client.set("prompt:key", "right")
        pool = client.connection_pool
        connection = await pool.get_connection()
        await connection.send_command("PING")
        await connection._parser.read_from_socket()  # type: ignore[union-attr]  # the reply arrived, unread
        socket_before = connection._writer
        await pool.release(connection)
        assert await client.get("prompt:key") == b"right", "a stale PONG must not be taken for this reply"
        assert connection._writer is not socket_before, "the connection was made again"
    finally:
        await client.aclose()


async def test_a_connection_the_server_closed_is_replaced(redis_url: str, redis: Redis) -> None:
    client = redis_client(redis_url)
    try:
        await client.client_setname("prompt-victim")
        victims = [c["id"] for c in await redis.client_list() if c["name"] == "prompt-victim"]
        await redis.client_kill_filter(_id=victims[0])
        assert await client.set("prompt:key", "again"), "a new connection answers"
    finally:
        await client.aclose()
