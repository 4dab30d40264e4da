"""Durable memory's benchmarks, against a real Postgres (and PgBouncer) started here:

    .venv/bin/python -m bench.history [--parts write,read,ttfd] [--records 20000] [--turns 100000] [--duration 120]

1. write: finished-turn records queued in Redis, moved into Postgres by one history writer (the worker's
   ``worker/history/writer.py``), directly and through PgBouncer in transaction mode: records per second;
2. read: ``GET /api/conversations`` and ``GET /api/conversations/{id}`` through the real gateway, with
   ``--turns`` turns of ``--readers`` readers in Postgres: p50/p95 per request, one request at a time;
3. ttfd: the stack (``python -m worker``, ``python -m gateway``, the fake Cohere at a realistic pace) with
   ``DATABASE_URL`` at Postgres and 100 chats in flight throughout, while Postgres is frozen and thawed in
   turn every ``--window`` seconds: time to first delta with the database on and off (p50/p90/p99), their
   ratio over all turns, and window by window.

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
from bench.stack import CpuMeter, FakeCohereSettings, LocalStack
from fake_cohere.testing import serve_asgi
from gateway.app import create_app
from loadtest.chat_load import ChatLoad, ChatLoadPlan
from loadtest.questions import load_questions
from loadtest.stats import summarize
from shared.db.conversations import get_conversation, list_conversations
from shared.db.database import Database
from shared.db.migrate import migrate
from shared.db.models import Reader
from shared.db.readers import reader_by_token, token_hash
from shared.db.turn_history import write_turns
from shared.history import TurnRecord
from shared.settings import Settings
from tests.factories import a_turn_record
from tests.postgres_servers import PgBouncer, PostgresServer
from worker.history.writer import HistoryWriter

PARTS = ("write", "read", "ttfd")
# ttfd: the service's processes, whose CPU a turn costs (Postgres included; the fake Cohere is not the service)
SERVICE = ("worker", "gateway", "redis", "postgres")
SETTLE_S = 1.5  # ttfd: longer than a first delta takes at 100 in flight, so a turn stays in its window


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


async def measure_ttfd(workdir: Path, server: PostgresServer, duration_s: float, window_s: float) -> dict[str, Any]:
    """100 chats in flight for ``duration_s`` without a pause, while Postgres is frozen (SIGSTOP: no CPU, no
    answers, records wait in Redis) and thawed in turn, ``window_s`` each. A turn counts for the window its
    ask was sent in, if sent ``SETTLE_S`` after the switch and ``SETTLE_S`` before the next, so its first
    delta lies in the same window. Both sides share the run's drift: adjacent windows are seconds apart."""
    name = server.create_database()
    fake = FakeCohereSettings(
        embed_latency_ms=100.0,
        rerank_latency_ms=0.0,
        chat_first_token_ms=300.0,
        tokens_per_second=50.0,
        answer_sentences=3,
    )
    questions = load_questions()
    extra = {"DATABASE_URL": server.url(name)}
    windows: list[tuple[str, float, float, dict[str, float]]] = []
    async with LocalStack(workdir / "ttfd", fake, extra_env=extra) as stack:
        await measure_level(stack, 20, duration_s=5, questions=questions)  # warm up
        ramp_s = 2.5
        plan = ChatLoadPlan(
            url=stack.chat_url,
            users=100,
            questions=questions,
            ramp_up_s=ramp_s,
            duration_s=ramp_s + window_s + duration_s,
            turn_timeout_s=60.0,
            seed=100,
        )
        run = asyncio.create_task(ChatLoad(plan).run())
        await asyncio.sleep(ramp_s + window_s)  # the ramp, then a window that counts for neither side
        try:
            for n in range(int(duration_s // window_s)):
                database = "on" if n % 2 else "off"
                (server.pause if database == "off" else server.resume)()
                meter = CpuMeter({name: p.pid for name, p in stack.processes.items() if name != "fake_cohere"})
                meter.start()
                postgres_before = postgres_cpu_seconds(server)
                started = time.time()
                await asyncio.sleep(window_s)
                ended = time.time()
                cores = meter.stop() | {
                    "postgres": (postgres_cpu_seconds(server) - postgres_before) / (ended - started)
                }
                windows.append((database, started, ended, cores))
        finally:
            server.resume()
        result = await run
    turns = [(t.sent_at, t.first_delta_s * 1000) for t in result.turns if t.ok and t.first_delta_s is not None]
    phases: list[dict[str, Any]] = []
    for database, started, ended, cores in windows:
        inside = [ms for sent_at, ms in turns if started + SETTLE_S <= sent_at <= ended - SETTLE_S]
        asked = sum(1 for sent_at, _ in turns if started <= sent_at < ended)
        service = sum(v for k, v in cores.items() if k in SERVICE)
        postgres = cores["postgres"]
        cpu_ms_per_turn = round(service * (ended - started) * 1000 / max(asked, 1), 2)
        phases.append(
            {
                "database": database,
                "ttfd_ms": inside,
                "cores": round(service, 3),
                "postgres_cores": round(postgres, 3),
                "turns_per_s": round(asked / (ended - started), 1),
                "cpu_ms_per_turn": cpu_ms_per_turn,
            }
        )
    results: dict[str, Any] = {"window_s": window_s, "windows": len(windows), "load": load()}
    for side in ("on", "off"):
        ttfd = [ms for p in phases if p["database"] == side for ms in p["ttfd_ms"]]
        results[f"ttfd_ms_{side}"] = summarize(ttfd)
        mine = [p for p in phases if p["database"] == side]
        results[f"service_cpu_ms_per_turn_{side}"] = round(statistics.median(p["cpu_ms_per_turn"] for p in mine), 2)
        results[f"postgres_cores_{side}"] = round(statistics.mean(p["postgres_cores"] for p in mine), 3)
        results[f"turns_per_s_{side}"] = round(statistics.mean(p["turns_per_s"] for p in mine), 1)
    pairs = list(zip(phases[::2], phases[1::2], strict=False))  # (off, on), adjacent
    for stat, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        results[f"ttfd_{stat}_ratio_on_off"] = round(
            percentile([ms for p in phases if p["database"] == "on" for ms in p["ttfd_ms"]], share)
            / percentile([ms for p in phases if p["database"] == "off" for ms in p["ttfd_ms"]], share),
            3,
        )
        ratios = [round(percentile(b["ttfd_ms"], share) / percentile(a["ttfd_ms"], share), 3) for a, b in pairs]
        results[f"ttfd_{stat}_window_ratios"] = ratios
        results[f"ttfd_{stat}_window_ratio_median"] = round(statistics.median(ratios), 3)
    results["phases"] = [{k: v for k, v in p.items() if k != "ttfd_ms"} | {"turns": len(p["ttfd_ms"])} for p in phases]
    print("ttfd on", results["ttfd_ms_on"], "off", results["ttfd_ms_off"], flush=True)
    return results


def postgres_cpu_seconds(server: PostgresServer) -> float:
    """CPU time used by the server so far: its live processes' own, and (in the postmaster's cutime and
    cstime) that of the children it has already reaped, such as a finished autovacuum worker."""
    total = 0
    postmaster, *children = server.processes()
    for pid in (postmaster, *children):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # reaped since it was listed: its time is in the postmaster's cutime now
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == postmaster:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--records", type=int, default=20_000, help="write: records queued")
    parser.add_argument("--turns", type=int, default=100_000, help="read: turns in the database")
    parser.add_argument("--readers", type=int, default=10_000, help="read: readers owning them")
    parser.add_argument("--requests", type=int, default=500, help="read: requests of each kind")
    parser.add_argument("--duration", type=float, default=120.0, help="ttfd: seconds of load measured")
    parser.add_argument("--window", type=float, default=6.0, help="ttfd: seconds Postgres is frozen, then thawed")
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
            results["ttfd"] = await measure_ttfd(workdir, server, args.duration, args.window)
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
