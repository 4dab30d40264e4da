"""The database engine, built once per process from settings (in the lifespan / ``on_startup``).

``DATABASE_URL`` names Postgres (psycopg 3's async driver); unset, the service keeps an SQLite file under
``DATA_DIR`` (aiosqlite), so ``make run`` needs nothing more.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.settings import Settings

# Neon and other managed Postgres close idle connections: recycle them before that, and check each one
# before use (``pool_pre_ping``) so a request never gets a dead connection.
POOL_RECYCLE_S = 300
POOL_TIMEOUT_S = 5
CONNECT_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_MS = 15_000


def database_url(settings: Settings) -> URL:
    if settings.database_url is None:
        return URL.create("sqlite+aiosqlite", database=str(settings.sqlite_path))
    url = make_url(settings.database_url.get_secret_value())
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    return url.set(drivername="postgresql+psycopg")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def build_engine(settings: Settings) -> AsyncEngine:
    """Connections are opened lazily: building the engine never waits on (or fails for) the database."""
    url = database_url(settings)
    if url.get_backend_name() == "sqlite":
        if url.database:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_pool_size,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _sqlite_transactions(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,
        pool_recycle=POOL_RECYCLE_S,
        connect_args={
            # PgBouncer in transaction mode (Neon's pooler) hands each transaction to any server connection:
            # a server-side prepared statement made in one is missing in the next, so psycopg must not make any.
            "prepare_threshold": None,
            "connect_timeout": CONNECT_TIMEOUT_S,
        },
    )


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """WAL (readers never wait for the writer), foreign keys on, and every transaction begun with
    ``BEGIN IMMEDIATE``: the write lock is taken up front, so two processes wait for each other
    (busy timeout) instead of failing when a read transaction later tries to write."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit off: rows are read into plain values before the session closes (no lazy loads)
    return async_sessionmaker(engine, expire_on_commit=False)
