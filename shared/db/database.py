"""One process's database: the engine, its sessions, and the start-up migration running in the background.

Built in the gateway's lifespan and the worker's ``on_startup``. Nothing here waits for the database:
``start`` launches the migration (retried until the database answers) and returns; callers that need the
schema check ``schema_ready``, and a request that cannot reach the database gets ``DatabaseUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db.engine import build_engine, session_factory
from shared.db.migrate import migrate_until_done
from shared.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")
PING_TIMEOUT_S = 2.0
SCHEMA_WAIT_S = 5.0


class DatabaseUnavailable(Exception):
    """The database cannot be reached, or its schema is not ready yet."""


class Database:
    def __init__(self, settings: Settings) -> None:
        self.engine: AsyncEngine = build_engine(settings)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        self.schema_ready = asyncio.Event()
        self._migration: asyncio.Task[None] | None = None

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def start(self) -> None:
        self._migration = asyncio.create_task(migrate_until_done(self.engine, self.schema_ready), name="db-migrate")

    async def ready_sessions(self, wait_s: float = SCHEMA_WAIT_S) -> async_sessionmaker[AsyncSession]:
        """The sessions once the schema is in place; a request made during start-up waits for it a little."""
        if not self.schema_ready.is_set():
            try:
                await asyncio.wait_for(self.schema_ready.wait(), wait_s)
            except TimeoutError:
                raise DatabaseUnavailable("the database is not ready") from None
        return self.sessions

    async def ping(self) -> str | None:
        """None when the database answers with its schema in place, else why not (no secrets in it)."""
        try:
            await within(PING_TIMEOUT_S, self._select_one())
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            return f"cannot reach the database ({type(exc).__name__})"
        if not self.schema_ready.is_set():
            return "migrating"
        return None

    async def _select_one(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._migration is not None:
            self._migration.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._migration
        await self.engine.dispose()


_given_up: set[asyncio.Task[Any]] = set()


async def within(seconds: float, operation: Coroutine[Any, Any, T]) -> T:
    """Wait at most ``seconds`` for a database operation without cancelling it: a cancellation in the middle
    of opening a connection would leave that connection unclosed (aiosqlite warns, a pool loses it). On
    time-out the operation finishes in the background and its connection goes back to the pool."""
    task = asyncio.ensure_future(operation)
    try:
        return await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:
        _given_up.add(task)
        task.add_done_callback(_forget)
        raise


def _forget(task: asyncio.Task[Any]) -> None:
    _given_up.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("a database operation given up on failed too: %s", type(task.exception()).__name__)


def is_connection_error(exc: BaseException) -> bool:
    """A failure of the database or the way to it (retry later), not of the statement (retrying is futile)."""
    if isinstance(exc, OSError | TimeoutError | DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or type(exc).__name__ in {"OperationalError", "InterfaceError"}
    return isinstance(exc, SQLAlchemyError) and not isinstance(exc, DBAPIError)
