"""The C-packing connections: the same bytes as redis-py's own packer, and real round trips over TCP."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from shared.redis_packing import (
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
