"""Durable memory's benchmarks, against a real Postgres (and PgBouncer) started here:

    .venv/bin/python -m bench.history [--parts write,read,ttfd] [--records 20000] [--turns 100000]

1. write: finished-turn records queued in Redis, moved into Postgres by one history writer (the worker's
   ``worker/history/writer.py``), directly and through PgBouncer in transaction mode: records per second;
2. read: ``GET /api/conversations`` and ``GET /api/conversations/{id}`` through the real gateway, with
   ``--turns`` turns of ``--readers`` readers in Postgres: p50/p95 per request, one request at a time;
3. ttfd: the stack (``python -m worker``, ``python -m gateway``, the fake Cohere at a realistic pace) with
   ``DATABASE_URL`` at Postgres, 100 chats in flight, measured with Postgres up (every turn written), then
   stopped (records wait in Redis), ``--rounds`` times: time to first delta and whole turn (p50/p90/p99), and
   each pair's ratio with their median.

Prints the figures and writes ``bench/results/history.json``. The load runs on the same CPUs as the
stack and the database: the machine's load average is recorded with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.hop_relay import measure_level
from bench.stack import FakeCohereSettings, LocalStack
from fake_cohere.testing import serve_asgi
from gateway.app import create_app
from loadtest.questions import load_questions
from shared.db.conversations import get_conversation, list_conversations
from shared.db.database import Database
from shared.db.migrate import migrate
from shared.db.models import Reader
from shared.db.readers import reader_by_token, token_hash
from shared.db.turn_history import write_turns
from shared.history import TurnRecord, waiting_records
from shared.settings import Settings
from tests.factories import a_turn_record
from tests.postgres_servers import PgBouncer, PostgresServer
from worker.history.writer import HistoryWriter

PARTS = ("write", "read", "ttfd")


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def settings_for(url: str, data_dir: Path, redis_url: str) -> Settings:
    return Settings(database_url=url, data_dir=data_dir, redis_url=redis_url)  # type: ignore[arg-type]


async def measure_writes(
    stack: LocalStack, server: PostgresServer, url: str, records: int, workdir: Path
) -> dict[str, Any]:
    assert stack.redis is not None
    await stack.redis.flushall()
    database = Database(settings_for(url, workdir, stack.redis_url))
    await migrate(database.engine)
    database.schema_ready.set()
    conversations = [uuid.uuid4().hex for _ in range(records // 5)]
    pipe_batch = 1000
    for start in range(0, records, pipe_batch):
        async with stack.redis.pipeline(transaction=False) as pipe:
            for _ in range(start, min(records, start + pipe_batch)):
                record = a_turn_record(conversation_id=random.choice(conversations))
                pipe.xadd("tutor:history", {"r": record.model_dump_json()})
            await pipe.execute()
    writer = HistoryWriter(stack.redis, database, "bench")
    started = time.perf_counter()
    task = asyncio.create_task(writer.run())
    await writer.wait_written(records)
    seconds = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await database.close()
    return {"records": records, "seconds": round(seconds, 3), "records_per_s": round(records / seconds), "load": load()}


async def fill_history(database: Database, turns: int, readers: int) -> list[tuple[str, list[str]]]:
    """``turns`` turns of ``readers`` readers (3 conversations each); returns each reader's token and
    conversation ids."""
    tokens: list[tuple[str, str]] = [(uuid.uuid4().hex, uuid.uuid4().hex + uuid.uuid4().hex) for _ in range(readers)]
    async with database.sessions.begin() as session:
        session.add_all(Reader(id=rid, token_hash=token_hash(tok)) for rid, tok in tokens)
    owned: list[tuple[str, list[str]]] = []
    records: list[TurnRecord] = []
    per_reader = turns // readers
    base = time.time() - 86400
    for n, (reader_id, token) in enumerate(tokens):
        conversations = [uuid.uuid4().hex for _ in range(3)]
        owned.append((token, conversations))
        for k in range(per_reader):
            at = base + n * per_reader + k
            records.append(
                a_turn_record(
                    reader_id=reader_id,
                    conversation_id=conversations[k % 3],
                    asked_at=at,
                    finished_at=at + 1,
                )
            )
        if len(records) >= 2000:
            await write_turns(database.sessions, records)
            records = []
    if records:
        await write_turns(database.sessions, records)
    return owned


async def measure_reads(
    stack: LocalStack, url: str, turns: int, readers: int, workdir: Path, requests: int
) -> dict[str, Any]:
    settings = settings_for(url, workdir, stack.redis_url)
    database = Database(settings)
    await migrate(database.engine)
    database.schema_ready.set()
    filled = time.perf_counter()
    owned = await fill_history(database, turns, readers)
    fill_s = time.perf_counter() - filled
    # the queries alone (the token's reader, then the list; one conversation), without HTTP and the gateway
    direct_lists: list[float] = []
    direct_gets: list[float] = []
    for _ in range(requests):
        token, conversations = random.choice(owned)
        started = time.perf_counter()
        reader_id = await reader_by_token(database.sessions, token)
        assert reader_id is not None
        await list_conversations(database.sessions, reader_id)
        direct_lists.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await get_conversation(database.sessions, reader_id, random.choice(conversations))
        direct_gets.append((time.perf_counter() - started) * 1000)
    await database.close()
    lists: list[float] = []
    gets: list[float] = []
    async with serve_asgi(create_app(settings), lifespan="on") as base, httpx.AsyncClient(base_url=base) as api:
        for _ in range(20):  # warm the pools
            token, conversations = random.choice(owned)
            await api.get("/api/conversations", headers={"Authorization": f"Bearer {token}"})
        for _ in range(requests):
            token, conversations = random.choice(owned)
            headers = {"Authorization": f"Bearer {token}"}
            started = time.perf_counter()
            listed = await api.get("/api/conversations", headers=headers)
            lists.append((time.perf_counter() - started) * 1000)
            assert listed.status_code == 200 and len(listed.json()["conversations"]) == 3, listed.text
            started = time.perf_counter()
            opened = await api.get(f"/api/conversations/{random.choice(conversations)}", headers=headers)
            gets.append((time.perf_counter() - started) * 1000)
            assert opened.status_code == 200, opened.text
    return {
        "turns": turns,
        "readers": readers,
        "fill_s": round(fill_s, 1),
        "requests": requests,
        "list_ms": {
            "p50": percentile(lists, 0.5),
            "p95": percentile(lists, 0.95),
            "mean": round(statistics.mean(lists), 2),
        },
        "get_ms": {
            "p50": percentile(gets, 0.5),
            "p95": percentile(gets, 0.95),
            "mean": round(statistics.mean(gets), 2),
        },
        "queries_only_list_ms": {"p50": percentile(direct_lists, 0.5), "p95": percentile(direct_lists, 0.95)},
        "queries_only_get_ms": {"p50": percentile(direct_gets, 0.5), "p95": percentile(direct_gets, 0.95)},
        "load": load(),
    }


async def measure_ttfd(workdir: Path, server: PostgresServer, duration_s: float, rounds: int) -> dict[str, Any]:
    """Postgres up and stopped, ``rounds`` pairs of phases in one stack, the order alternating (on-off, off-on,
    ...) so that neither side always runs second. Before an "on" phase the records queued while Postgres was
    stopped are written first: the catch-up is not what a phase with the database up costs."""
    name = server.create_database()
    fake = FakeCohereSettings(
        embed_latency_ms=100.0,
        rerank_latency_ms=0.0,
        chat_first_token_ms=300.0,
        tokens_per_second=50.0,
        answer_sentences=3,
    )
    questions = load_questions()
    phases: list[dict[str, Any]] = []
    extra = {"DATABASE_URL": server.url(name)}
    async with LocalStack(workdir / "ttfd", fake, extra_env=extra) as stack:
        assert stack.redis is not None
        await measure_level(stack, 20, duration_s=5, questions=questions)  # warm up
        for round_ in range(rounds):
            order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
            for database in order:
                if database == "off" and server.running():
                    await asyncio.to_thread(server.stop)
                elif database == "on":
                    if not server.running():
                        await asyncio.to_thread(server.start)
                    await drained(stack.redis)
                level = await measure_level(stack, 100, duration_s=duration_s, questions=questions)
                phase = {"database": database, "round": round_ + 1, "load": load()}
                phase |= {k: level[k] for k in ("turns_ok", "turns_failed", "ttfd_ms", "turn_ms", "cpu_cores_used")}
                print(database, phase["ttfd_ms"], phase["turn_ms"], phase["load"], flush=True)
                phases.append(phase)
        if not server.running():
            await asyncio.to_thread(server.start)
    results: dict[str, Any] = {"phases": phases}
    pairs = [
        (
            next(p for p in phases if p["round"] == r and p["database"] == "on"),
            next(p for p in phases if p["round"] == r and p["database"] == "off"),
        )
        for r in range(1, rounds + 1)
    ]
    for stat in ("p50", "p90", "p99"):
        ratios = [round(on["ttfd_ms"][stat] / off["ttfd_ms"][stat], 3) for on, off in pairs]
        results[f"ttfd_{stat}_ratios_on_off"] = ratios
        results[f"ttfd_{stat}_ratio_on_off_median"] = round(statistics.median(ratios), 3)
        turn_ratios = [round(on["turn_ms"][stat] / off["turn_ms"][stat], 3) for on, off in pairs]
        results[f"turn_{stat}_ratio_on_off_median"] = round(statistics.median(turn_ratios), 3)
    return results


async def drained(redis: Any, timeout_s: float = 60.0) -> None:
    """Until the history queue is empty: every record of the phase before is in the database."""
    deadline = time.monotonic() + timeout_s
    while await waiting_records(redis) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the history writer did not catch up")
        await asyncio.sleep(0.2)  # polling the queue's length: Redis has no event for "stream empty"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--records", type=int, default=20_000, help="write: records queued")
    parser.add_argument("--turns", type=int, default=100_000, help="read: turns in the database")
    parser.add_argument("--readers", type=int, default=10_000, help="read: readers owning them")
    parser.add_argument("--requests", type=int, default=500, help="read: requests of each kind")
    parser.add_argument("--duration", type=float, default=20.0, help="ttfd: seconds measured per phase")
    parser.add_argument("--rounds", type=int, default=3, help="ttfd: pairs of phases, Postgres up then stopped")
    parser.add_argument("--out", type=Path, default=Path("bench/results/history.json"))
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = [p for p in args.parts.split(",") if p]
    server = PostgresServer()
    server.start()
    bouncer = PgBouncer(server)
    bouncer.start()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_at_start": load()}}
    workdir = Path(tempfile.mkdtemp(prefix="bench-history-"))
    fake = FakeCohereSettings(
        embed_latency_ms=0.0,
        rerank_latency_ms=0.0,
        chat_first_token_ms=0.0,
        tokens_per_second=1000.0,
        answer_sentences=1,
    )
    try:
        if "write" in parts or "read" in parts:
            async with LocalStack(workdir / "redis-only", fake, with_app=False) as stack:
                if "write" in parts:
                    results["write"] = {
                        "postgres": await measure_writes(
                            stack, server, server.url(server.create_database()), args.records, workdir
                        ),
                        "pgbouncer": await measure_writes(
                            stack, server, bouncer.url(server.create_database()), args.records, workdir
                        ),
                    }
                    print("write", json.dumps(results["write"]))
                if "read" in parts:
                    results["read"] = await measure_reads(
                        stack, bouncer.url(server.create_database()), args.turns, args.readers, workdir, args.requests
                    )
                    print("read", json.dumps(results["read"]))
        if "ttfd" in parts:
            results["ttfd"] = await measure_ttfd(workdir, server, args.duration, args.rounds)
            print("ttfd", json.dumps(results["ttfd"]))
    finally:
        bouncer.stop()
        bouncer.remove()
        if server.running():
            server.stop("immediate")
        server.remove()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
