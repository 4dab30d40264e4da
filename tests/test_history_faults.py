"""The database fails under the real stack: chat keeps answering, finished turns wait in Redis and are written
once the database is back (one row per turn), and several processes migrating at once migrate once."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from alembic.script import ScriptDirectory

import shared.db
from shared.settings import Settings
from tests.conftest import SettingsFactory
from tests.postgres_servers import PgBouncer, PostgresServer
from tests.stack import (
    chat,
    history_written,
    settings_env,
    stack_with_worker,
)
from worker.app import TutorWorker

HEAD = ScriptDirectory(str(Path(shared.db.__file__).parent / "migrations")).get_current_head()


@contextlib.asynccontextmanager
async def stack(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, TutorWorker]]:
    async with stack_with_worker(settings) as (url, worker), httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client, worker


def turn_rows(server: PostgresServer, database: str = "postgres") -> dict[str, int]:
    with psycopg.connect(server.url(database)) as connection:
        found = connection.execute("SELECT id, count(*) FROM turns GROUP BY id").fetchall()
    return {turn_id: int(n) for turn_id, n in found}


async def ask_many(url: str, count: int, reader_token: str | None = None) -> list[str]:
    async def one(n: int) -> str:
        async with chat(url) as client:
            if reader_token is not None:
                await client.send({"type": "hello", "reader_token": reader_token})
                assert (await client.receive())["type"] == "welcome"
            turn = await client.ask(f"Question {n}: what is a ROS 2 topic?")
            assert turn.terminal["type"] == "done", turn.terminal
            return turn.turn_id

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def test_postgres_stopped_under_load_then_started_loses_and_doubles_nothing(
    make_settings: SettingsFactory, own_postgres: PostgresServer
) -> None:
    settings = make_settings(database_url=own_postgres.url())
    async with stack(settings) as (api, worker):
        url = str(api.base_url)
        before = await ask_many(url, 5)
        await history_written(worker, 5)
        own_postgres.stop()
        during = await ask_many(url, 20)  # chat answers throughout
        ready = (await api.get("/ready")).json()
        assert ready["status"] == "ready" and ready["degraded"] == ["database"]
        assert not ready["checks"]["database"]["ok"] and ready["history_waiting"] == 20
        refused = await api.post("/api/readers")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "unavailable"
        own_postgres.start()
        await history_written(worker, 25)
        ready = (await api.get("/ready")).json()
        assert ready["checks"]["database"]["ok"] and ready["history_waiting"] == 0 and ready["degraded"] == []
    assert turn_rows(own_postgres) == {turn_id: 1 for turn_id in before + during}


async def test_postgres_unreachable_at_start_up(make_settings: SettingsFactory, own_postgres: PostgresServer) -> None:
    own_postgres.stop()
    settings = make_settings(database_url=own_postgres.url())
    async with stack(settings) as (api, worker):
        asked = await ask_many(str(api.base_url), 3)  # the stack starts and answers without its database
        ready = (await api.get("/ready")).json()
        assert ready["status"] == "ready" and "database" in ready["degraded"] and ready["history_waiting"] == 3
        own_postgres.start()
        await history_written(worker, 3)  # migrated, then written
        created = await api.post("/api/readers")
        assert created.status_code == 201
    assert turn_rows(own_postgres) == {turn_id: 1 for turn_id in asked}


async def test_pgbouncer_restarted_between_turns(make_settings: SettingsFactory, own_postgres: PostgresServer) -> None:
    bouncer = PgBouncer(own_postgres)
    bouncer.start()
    try:
        async with stack(make_settings(database_url=bouncer.url("postgres"))) as (api, worker):
            token = (await api.post("/api/readers")).json()["reader_token"]
            first = await ask_many(str(api.base_url), 3, token)
            await history_written(worker, 3)
            bouncer.stop()
            bouncer.start()  # every pooled connection of both processes is now dead
            listed = await api.get("/api/conversations", headers={"Authorization": f"Bearer {token}"})
            assert listed.status_code == 200 and len(listed.json()["conversations"]) == 3
            second = await ask_many(str(api.base_url), 3, token)
            await history_written(worker, 6)
        assert turn_rows(own_postgres) == {turn_id: 1 for turn_id in first + second}
    finally:
        bouncer.stop()
        bouncer.remove()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migrations_started_by_several_processes_at_once_run_once(
    make_settings: SettingsFactory, postgres_server: PostgresServer, data_dir: Path, backend: str
) -> None:
    url = postgres_server.url(postgres_server.create_database()) if backend == "postgres" else None
    env = settings_env(make_settings(database_url=url))
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared.db.migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [(await p.communicate())[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    assert sum("Running upgrade  -> 0001" in out for out in outputs) == 1, "one process migrated, the rest waited"
    if url is not None:
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    else:
        assert (data_dir / "tutor.sqlite3").exists()


async def test_a_chat_client_is_never_kept_waiting_by_a_dead_database(
    make_settings: SettingsFactory, own_postgres: PostgresServer
) -> None:
    """With the database gone, a socket's hello and feedback get ``unavailable`` at once, and asks on the same
    socket still answer."""
    async with stack(make_settings(database_url=own_postgres.url())) as (api, _worker):
        token = (await api.post("/api/readers")).json()["reader_token"]
        own_postgres.stop()
        async with chat(str(api.base_url)) as client:
            await client.send({"type": "hello", "reader_token": token})
            refused = await client.receive()
            assert refused["type"] == "error" and refused["code"] == "unavailable"
            turn = await client.ask("What is a URDF?")
            assert turn.terminal["type"] == "done"
