"""``/ready``: Redis answers, this process's relay reads, a worker is alive, and its collection exists.

The database is checked and shown too, with the number of finished turns waiting for it, but it does not
make the service unready: chat answers without it, and the history waits in Redis until it is back."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import keys
from shared.db.database import Database
from shared.health import IndexingFailure, WorkerHeartbeat
from shared.history import waiting_records


class Check(BaseModel):
    ok: bool
    detail: str | None = Field(None, exclude_if=lambda detail: detail is None)
    """Only for the admin: details name the store's path or Qdrant's host."""


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    failing: list[str]
    checks: dict[str, Check]
    degraded: list[str] = []
    """Checks that fail without stopping chat (the database)."""
    history_waiting: int | None = None
    """Finished turns queued in Redis for the database (None when Redis cannot say)."""
    explanation: str | None = None
    """While the first indexing of the book keeps failing: what failed and what to change, in one line."""

    def without_details(self) -> Readiness:
        """What anyone may see: each check's name and whether it passes."""
        return self.model_copy(update={"checks": {name: Check(ok=c.ok) for name, c in self.checks.items()}})


async def worker_heartbeats(redis: Redis) -> list[WorkerHeartbeat]:
    beats: list[WorkerHeartbeat] = []
    async for key in redis.scan_iter(match=f"{keys.WORKER_HEARTBEAT_PREFIX}*", count=100):
        raw = await redis.get(key)
        if raw is None:
            continue
        try:
            beats.append(WorkerHeartbeat.model_validate_json(raw))
        except ValidationError:
            continue
    return beats


async def indexing_failure(redis: Redis) -> IndexingFailure | None:
    raw = await redis.get(keys.INDEXING_FAILURE)
    if raw is None:
        return None
    try:
        return IndexingFailure.model_validate_json(raw)
    except ValidationError:
        return None


async def check_readiness(
    redis: Redis,
    collection: str,
    timeout_s: float = 2.0,
    *,
    relay_failing: bool = False,
    database: Database | None = None,
) -> Readiness:
    checks: dict[str, Check] = {}
    beats: list[WorkerHeartbeat] = []
    failure: IndexingFailure | None = None
    try:
        async with asyncio.timeout(timeout_s):
            await redis.ping()
            beats = await worker_heartbeats(redis)
            failure = await indexing_failure(redis)
        checks["redis"] = Check(ok=True, detail="answers")
    except (RedisError, OSError, TimeoutError) as exc:
        checks["redis"] = Check(ok=False, detail=f"cannot reach Redis ({type(exc).__name__})")

    if relay_failing:
        checks["relay"] = Check(ok=False, detail="this gateway's reads of turn events keep failing")
    else:
        checks["relay"] = Check(ok=True, detail="reads turn events")
    if not checks["redis"].ok:
        checks["worker"] = Check(ok=False, detail="unknown: Redis is down")
        checks["collection"] = Check(ok=False, detail="unknown: Redis is down")
    elif not beats:
        checks["worker"] = Check(ok=False, detail="no worker heartbeat in the last few seconds")
        checks["collection"] = Check(ok=False, detail="unknown: no worker reports it")
    else:
        checks["worker"] = Check(ok=True, detail=f"{len(beats)} alive ({beats[0].provider} provider)")
        ready = [b for b in beats if b.collection_ready]
        if ready:
            checks["collection"] = Check(
                ok=True,
                detail=f"'{ready[0].collection}' has {ready[0].points} points at {ready[0].qdrant_location}",
            )
        else:
            beat = beats[0]
            why = beat.qdrant_error or "the collection does not exist yet (indexing?)"
            checks["collection"] = Check(ok=False, detail=f"'{collection}' at {beat.qdrant_location}: {why}")
    failing = [name for name, check in checks.items() if not check.ok]  # before the database's check
    degraded: list[str] = []
    waiting: int | None = None
    if database is not None:
        problem = await database.ping()
        checks["database"] = Check(ok=problem is None, detail=problem or f"answers ({database.backend})")
        if problem is not None:
            degraded.append("database")
        if checks["redis"].ok:
            try:
                async with asyncio.timeout(timeout_s):
                    waiting = await waiting_records(redis)
            except (RedisError, OSError, TimeoutError):
                waiting = None
    return Readiness(
        status="not_ready" if failing else "ready",
        failing=failing,
        checks=checks,
        degraded=degraded,
        history_waiting=waiting,
        explanation=failure.line if failure is not None and "collection" in failing else None,
    )
