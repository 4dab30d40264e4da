"""Bring the schema to the newest migration, exactly once however many processes start together.

Every process (gateway, worker) migrates at start-up. The migration runs in one transaction that first
takes a lock: on Postgres a transaction-scoped advisory lock (released by the commit, and safe through
PgBouncer's transaction mode, unlike a session lock), on SQLite the write lock of ``BEGIN IMMEDIATE``. The
second process waits, then finds the schema current and does nothing. A database that cannot be reached
is retried in the background; the service answers meanwhile (history waits in Redis, see worker/history_writer).

A schema already at ``SCHEMA_HEAD`` is recognised from ``alembic_version`` alone, so Alembic (and Mako and
Pygments with it) is imported only by a process that has migrations to run, not by every start.

``python -m shared.db.migrate`` runs it by hand; ``--revision "message"`` autogenerates a new migration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import build_engine
from shared.settings import load_settings

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant shared by every process of the service: "the tutor's schema is being migrated".
ADVISORY_LOCK_KEY = 0x7475746F72  # "tutor"
RETRY_MAX_S = 10.0
# The newest migration's revision (tests/shared/db/test_migrations.py checks it is Alembic's head).
SCHEMA_HEAD = "0004"


def alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        await connection.run_sync(_upgrade_unless_current)


def is_current(connection: Connection) -> bool:
    """Whether the schema is at ``SCHEMA_HEAD``, read without Alembic."""
    if not inspect(connection).has_table("alembic_version"):
        return False
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars()) == [SCHEMA_HEAD]


def _upgrade_unless_current(connection: Connection) -> None:
    if is_current(connection):
        return
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


async def migrate_until_done(engine: AsyncEngine, done: asyncio.Event) -> None:
    """Retry with backoff until the schema is current (the database may be down, or still starting)."""
    backoff = 0.5
    while True:
        try:
            await migrate(engine)
        except Exception as exc:
            logger.warning("database not migrated yet (%s); retrying in %.0fs", type(exc).__name__, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX_S)
            continue
        done.set()
        return


async def _autogenerate(engine: AsyncEngine, message: str) -> None:
    from alembic import command

    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync: command.revision(alembic_config(sync), message=message, autogenerate=True)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="Migrate the tutor's database (DATABASE_URL, or SQLite in DATA_DIR).")
    parser.add_argument("--revision", metavar="MESSAGE", help="autogenerate a migration from the models instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    engine = build_engine(load_settings())

    async def run() -> None:
        try:
            await (_autogenerate(engine, args.revision) if args.revision else migrate(engine))
        finally:
            await engine.dispose()

    asyncio.run(run())


if __name__ == "__main__":
    main()
