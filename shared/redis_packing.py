"""Redis connections that pack commands in C.

redis-py's asyncio connection packs every command in Python, one argument at a time (its synchronous
connection already uses hiredis). The hot commands here carry many arguments: the relay's XREAD names
every stream it follows (~100 keys and ids at 100 chats in flight) and the worker's event append carries
the events of all its turns. Measured on this machine: 126 µs to pack such an XREAD in Python, 26 µs with
hiredis, the same bytes (the relay's packing was ~12 % of the gateway's CPU under load in py-spy). So the
pools of the hot paths use these connection classes.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.connection import HiredisRespSerializer

_PACKER = HiredisRespSerializer()


class HiredisPackingConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _PACKER.pack(*args)  # type: ignore[no-any-return]


class HiredisPackingUnixConnection(UnixDomainSocketConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _PACKER.pack(*args)  # type: ignore[no-any-return]


class HiredisPackingSSLConnection(SSLConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _PACKER.pack(*args)  # type: ignore[no-any-return]


_PACKING = {
    Connection: HiredisPackingConnection,
    UnixDomainSocketConnection: HiredisPackingUnixConnection,
    SSLConnection: HiredisPackingSSLConnection,
}


def connection_pool(url: str, **options: Any) -> ConnectionPool:
    """``ConnectionPool.from_url`` with the C packer, for ``redis://``, ``rediss://`` and ``unix://`` URLs.

    The class is swapped after ``from_url``: it lets the URL's scheme override a ``connection_class``
    passed to it. No connection exists yet, so every one the pool makes is of the packing class."""
    pool = ConnectionPool.from_url(url, **options)
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return pool


def redis_client(url: str, *, single_connection_client: bool = False, **options: Any) -> Redis:
    """``Redis.from_url`` with the C packer; the client owns its pool and closes it with itself."""
    client = Redis(connection_pool=connection_pool(url, **options), single_connection_client=single_connection_client)
    client.auto_close_connection_pool = True  # as Redis.from_pool does
    return client
