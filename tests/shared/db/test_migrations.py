"""The migrations build exactly the models' schema on every backend (a column added to a model without its
migration, like ``turns.grounded`` in 0002, would show here)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from shared.db import migrate
from shared.db.database import Database
from shared.db.models import Base

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_the_migrated_schema_is_the_models_schema(database: Database) -> None:
    async with database.engine.connect() as connection:
        assert await connection.run_sync(_differences) == []


def _versions(connection: Connection) -> list[str]:
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


async def test_schema_head_is_the_newest_migration(database: Database) -> None:
    """A migration added without moving ``SCHEMA_HEAD`` would be skipped by every process that starts on a
    schema at the old head."""
    head = ScriptDirectory(str(migrate.MIGRATIONS)).get_current_head()
    assert head == migrate.SCHEMA_HEAD
    async with database.engine.connect() as connection:
        assert await connection.run_sync(_versions) == [head]
        assert await connection.run_sync(migrate.is_current)


async def test_a_schema_behind_the_head_is_migrated_again(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0003'"))
        await connection.execute(text("DROP TABLE joined_readers"))
        assert not await connection.run_sync(migrate.is_current)
    await migrate.migrate(database.engine)
    async with database.engine.connect() as connection:
        assert await connection.run_sync(migrate.is_current)
        assert await connection.run_sync(_differences) == []
