"""A managed Redis: ``rediss://user:password@host:port``, TLS on, and an ACL user allowed only the service's own
keys, channels and commands (``shared/redis_acl.py``). The real gateway and worker run against it as separate
processes; anything they send outside those rules is refused by Redis and shows in its ACL log, failing here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from fake_cohere.knobs import Knobs
from fake_cohere.testing import RunningFake, running_fake_cohere
from shared.redis_acl import acl_rules
from tests.conftest import IsolatedSettings
from tests.ports import free_port
from tests.replicas import ManagedRedis, ServiceProcess, managed_redis, service_processes
from tests.stack import chat

ADMIN_TOKEN = "managed-redis-admin-token-0123456789"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[ManagedRedis]:
    with managed_redis(tmp_path / "redis", free_port(), acl_rules()) as redis:
        yield redis


@pytest.fixture
async def admin(tls_redis: ManagedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(tls_redis.admin_url, ssl_ca_certs=str(tls_redis.ca_file))
    yield client
    await client.aclose()


async def denied(admin: Redis) -> list[str]:
    """What the ACL refused since the server started: the command or key and who asked."""
    entries = await admin.acl_log()
    return [f"{e.get('reason')}: {e.get('object')} by {e.get('username')}" for e in entries]


async def test_the_service_runs_on_a_tls_redis_as_an_acl_user_within_its_rules(
    tls_redis: ManagedRedis, admin: Redis, tmp_path: Path
) -> None:
    async with running_fake_cohere(Knobs(embed_dimension=256, tokens_per_second=40)) as fake:
        await run_the_service(tls_redis, admin, fake, tmp_path)


async def run_the_service(tls_redis: ManagedRedis, admin: Redis, fake: RunningFake, tmp_path: Path) -> None:
    port = free_port()
    settings = IsolatedSettings(
        redis_url=tls_redis.service_url,
        data_dir=tmp_path / "data",
        host="127.0.0.1",
        port=port,
        cohere_api_key="managed-redis-cohere-key-0123",
        cohere_base_url=fake.base_url,
        cohere_embed_dimension=256,
        # every shared limit on, so that their scripts run under the ACL too
        cohere_chat_per_minute=1000,
        cohere_embed_inputs_per_minute=100_000,
        cohere_rerank_per_minute=1000,
        asks_per_minute_per_client=1000,
        admin_token=ADMIN_TOKEN,
        resume_grace_s=5.0,
    )
    trust_the_test_ca = {"SSL_CERT_FILE": str(tls_redis.ca_file)}
    worker = ServiceProcess("worker", settings, trust_the_test_ca)
    gateway = ServiceProcess("gateway", settings, trust_the_test_ca)
    base = f"http://127.0.0.1:{port}"
    async with service_processes(worker, gateway), httpx.AsyncClient(base_url=base, timeout=30) as http:
        ready = await http.get("/ready")
        assert ready.status_code == 200, ready.text

        async with chat(base) as client:
            first = await client.ask("What is a ROS 2 topic?")
            assert first.terminal["type"] == "done", first.events
            assert first.text == first.terminal["answer"] and first.of("citation")
            follow_up = await client.ask("And a service?", conversation_id=first.events[0]["conversation_id"])
            assert follow_up.terminal["type"] == "done", follow_up.events

            # cancelled mid-answer
            await client.send({"type": "ask", "question": "Explain the humanoid's balance control in depth."})
            cancelled = await client.collect(until="delta")
            await client.send({"type": "cancel", "turn_id": cancelled.turn_id})
            await client.collect(cancelled)
            assert cancelled.terminal["type"] == "error" and cancelled.terminal["code"] == "cancelled"

            # resumed from another socket after the first one dropped
            await client.send({"type": "ask", "question": "How do humanoid robots walk?"})
            dropped = await client.collect(until="delta")
        async with chat(base) as other:
            await other.send({"type": "resume", "turn_id": dropped.turn_id, "after": dropped.events[-1]["id"]})
            resumed = await other.collect()
        assert resumed.terminal["type"] == "done", resumed.events
        assert dropped.text + resumed.text == resumed.terminal["answer"]

        answer = await http.post("/api/chat", json={"question": "What does a lidar measure?"})
        assert answer.status_code == 200, answer.text

        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        job = await http.post("/api/admin/reindex", json={"mode": "full"}, headers=auth)
        assert job.status_code == 202, job.text
        job_id = job.json()["job_id"]
        assert worker.logs is not None
        await worker.logs.wait_for(f"re-index {job_id} complete")
        status = await http.get(f"/api/admin/reindex/{job_id}", headers=auth)
        assert status.json()["status"] == "complete", status.text

        again = await http.get("/ready")
        assert again.status_code == 200, again.text
        assert await denied(admin) == [], "the service stepped outside its ACL"

    # shutting down used Redis too (the worker ends its turns, the gateway leaves its streams)
    assert await denied(admin) == [], "the service stepped outside its ACL while stopping"
    assert await admin.dbsize() > 0, "the service wrote to this Redis"


async def test_the_acl_user_is_refused_other_keys_channels_and_commands(tls_redis: ManagedRedis, admin: Redis) -> None:
    """The rules are enforced, so the test above would see a stray key or command."""
    service = Redis.from_url(tls_redis.service_url, ssl_ca_certs=str(tls_redis.ca_file))
    try:
        await service.set("tutor:probe", "1")
        with pytest.raises(NoPermissionError):
            await service.set("someone-else:key", "1")
        with pytest.raises(NoPermissionError):
            await service.publish("someone-else:channel", "1")
        with pytest.raises(NoPermissionError):
            await service.flushall()
        with pytest.raises(NoPermissionError):
            await service.config_get("requirepass")
    finally:
        await service.aclose()
    assert len(await denied(admin)) == 4
