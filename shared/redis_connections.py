"""Redis clients for the hot paths: commands packed in C, pooled connections handed out without a wait.

* **Packing.** redis-py's asyncio connection packs every command in Python, one argument at a time (its
  synchronous connection already uses hiredis). The hot commands here carry many arguments: the relay's
  XREAD names every stream it follows (~100 keys and ids at 100 chats in flight) and the worker's event
  append carries the events of all its turns. Measured on this machine: 126 µs to pack such an XREAD in
  Python, 26 µs with hiredis, the same bytes (the relay's packing was ~12 % of the gateway's CPU under load
  in py-spy).
* **Handing out a pooled connection.** Before every command, redis-py 5's asyncio pool checks that the
  connection holds no stray reply with a read under a zero timeout. That read yields to the event loop and
  the timer fires on a later turn of it, so on a busy loop every command waits behind every other ready
  callback before it is even sent. redis-py 8 checks the buffers instead (redis/redis-py#4063), but arq
  pins redis < 6; ``PromptConnectionPool`` makes that same check here.
* **Sending.** With a ``socket_timeout`` (every client here has one), redis-py hands each write to
  ``asyncio.wait_for``, which on Python 3.11 runs it as a task of its own: the bytes leave on a later turn of
  the loop, and a cancellation that arrives as that task finishes is lost (a blocking pop cancelled at that
  moment went on waiting, and a worker's shutdown with it). Here the write is made in the caller's own step,
  under ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis._parsers.hiredis import _AsyncHiredisParser
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_PACKER = HiredisRespSerializer()


class _PackAndSendPromptly(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _PACKER.pack(*args)  # type: ignore[no-any-return]

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        timeout = self.socket_timeout
        if not timeout:
            return await super().send_packed_command(command, check_health)
        # Without a socket_timeout redis-py writes in this step; the time limit is kept around it instead.
        self.socket_timeout = None
        try:
            async with asyncio.timeout(timeout):
                await super().send_packed_command(command, check_health)
        except TimeoutError:
            await self.disconnect(nowait=True)  # redis-py's own handling of a write that timed out
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout


class HiredisPackingConnection(_PackAndSendPromptly, Connection):
    pass


class HiredisPackingUnixConnection(_PackAndSendPromptly, UnixDomainSocketConnection):
    pass


class HiredisPackingSSLConnection(_PackAndSendPromptly, SSLConnection):
    pass


_PACKING = {
    Connection: HiredisPackingConnection,
    UnixDomainSocketConnection: HiredisPackingUnixConnection,
    SSLConnection: HiredisPackingSSLConnection,
}


async def _is_dirty(connection: AbstractConnection) -> bool:
    """Whether a connection holds unread data or has been closed by the server, without waiting."""
    parser: Any = connection._parser  # redis-py's private parts, as redis-py 8 reads them
    if not isinstance(parser, _AsyncHiredisParser):  # not used here (hiredis is installed): redis-py's own check
        return bool(await connection.can_read_destructive())  # type: ignore[no-untyped-call]
    if not parser._connected:
        return True
    reader: Any = parser._reader
    stream: Any = parser._stream
    return bool(reader.has_data() or stream.at_eof() or stream._buffer or stream.exception() is not None)


class PromptConnectionPool(ConnectionPool):
    async def ensure_connection(self, connection: AbstractConnection) -> None:
        """redis-py's check of a connection about to be handed out, made on the buffers (no loop turn)."""
        await connection.connect()  # type: ignore[no-untyped-call]  # returns at once when connected
        if await _is_dirty(connection):
            await connection.disconnect()
            await connection.connect()  # type: ignore[no-untyped-call]
            if await _is_dirty(connection):
                raise RedisConnectionError("Connection not ready")


def connection_pool(url: str, **options: Any) -> ConnectionPool:
    """A ``PromptConnectionPool`` from a ``redis://``, ``rediss://`` or ``unix://`` URL, packing in C.

    The class is swapped after ``from_url``: it lets the URL's scheme override a ``connection_class``
    passed to it. No connection exists yet, so every one the pool makes is of the packing class."""
    pool = PromptConnectionPool.from_url(url, **options)
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return pool


def redis_client(url: str, *, single_connection_client: bool = False, **options: Any) -> Redis:
    """``Redis.from_url`` on a ``connection_pool`` of its own, which it closes with itself."""
    client = Redis(connection_pool=connection_pool(url, **options), single_connection_client=single_connection_client)
    client.auto_close_connection_pool = True  # as Redis.from_pool does
    return client
