"""Fixtures shared by every test: a real redis-server on a free port, flushed before each test.

Nothing outside the machine is reached: Cohere is the project's fake server (``fake_cohere``) spoken to by
the real SDK, Qdrant is qdrant-client's embedded mode under a temporary folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from fake_cohere.knobs import Knobs
from fake_cohere.testing import RunningFake, running_fake_cohere
from shared.db.database import Database
from shared.db.migrate import migrate
from shared.redis_server import redis_server_args
from shared.settings import Settings
from tests.factories import IsolatedSettings
from tests.ports import free_port
from tests.postgres_servers import PgBouncer, PostgresServer


def redis_argv(binary: str, port: int, workdir: Path) -> list[str]:
    """A test's redis-server, configured as the product's embedded one (``shared.redis_server``) but on a
    loopback port, and logging at notice level so a test can wait for "Ready to accept connections"."""
    settings = IsolatedSettings(redis_url=f"redis://127.0.0.1:{port}/0", data_dir=workdir)
    return [binary, *redis_server_args(settings)[1:], "--loglevel", "notice"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for the whole test session (no persistence, loopback only)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run the tests through `make test`")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        redis_argv(binary, port, workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on the session's Redis, flushed first so every test starts from nothing."""
    client = Redis.from_url(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(redis_url: str, redis: Redis, data_dir: Path) -> SettingsFactory:
    """Settings for a test's own stack; asking for them also flushes Redis (through ``redis``), so no state
    (rate limits, turns, conversations) leaks from one test into the next."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "redis_url": redis_url,
            "data_dir": data_dir,
            "resume_grace_s": 5.0,
            "asks_per_minute_per_client": 0,  # tests ask fast from one address; the limiter has its own tests
        }
        values.update(overrides)
        return IsolatedSettings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def fake_cohere() -> AsyncIterator[RunningFake]:
    async with running_fake_cohere(Knobs(embed_dimension=256)) as fake:
        yield fake


@pytest.fixture
def cohere_settings(make_settings: SettingsFactory, fake_cohere: RunningFake) -> SettingsFactory:
    """Settings for the Cohere provider, pointed at the fake through the real SDK."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "cohere_api_key": "test-cohere-key-0123456789",
            "cohere_base_url": fake_cohere.base_url,
            "cohere_embed_dimension": 256,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


# --- databases: the embedded SQLite file, a real Postgres, and Postgres behind a real PgBouncer -------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One Postgres for the session; each test that uses it gets a database of its own."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop("immediate")
    server.remove()


@pytest.fixture(scope="session")
def pgbouncer(postgres_server: PostgresServer) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(postgres_server)
    bouncer.start()
    yield bouncer
    bouncer.stop()
    bouncer.remove()


DATABASE_BACKENDS = ["sqlite", "postgres", "pgbouncer"]


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """DATABASE_URL for each backend: None (SQLite under the test's DATA_DIR), a fresh Postgres database,
    and the same reached through PgBouncer in transaction mode."""
    if request.param == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    if request.param == "pgbouncer":
        yield request.getfixturevalue("pgbouncer").url(name)
    else:
        yield server.url(name)
    server.drop_database(name)


@pytest.fixture
async def database(make_settings: SettingsFactory, database_url: str | None) -> AsyncIterator[Database]:
    """A migrated database on each backend (the schema is ready when the test starts)."""
    db = Database(make_settings(database_url=database_url))
    await migrate(db.engine)
    db.schema_ready.set()
    yield db
    await db.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A Postgres of the test's own, started, for tests that stop and start it (outages)."""
    server = PostgresServer()
    server.start()
    yield server
    if server.running():
        server.stop("immediate")
    server.remove()
