"""The worker's history writer: moves finished turns from the Redis queue (shared/history.py) into the database.

Each worker runs one, all in one consumer group, so a record goes to one writer at a time. A batch is
upserted in one transaction, then acknowledged and deleted; until then it stays pending. Under load records
are gathered into batches of up to ``WRITE_INTERVAL_S`` worth, so the writer takes little of the loop. While the
database is unreachable the writer keeps retrying its own pending batch (with backoff) and takes nothing
new, so records wait in Redis in order; a writer that died leaves its pending records to be claimed by
another after ``CLAIM_IDLE_MS``. Writes are idempotent (keyed by turn id), so a record written and then
claimed again before its acknowledgement still makes one row.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from shared import keys
from shared.db.database import Database, is_connection_error
from shared.db.turn_history import write_turns
from shared.history import WRITERS_GROUP, TurnRecord

logger = logging.getLogger(__name__)

BATCH = 500
BLOCK_MS = 1000
CLAIM_IDLE_MS = 30_000  # well over the longest batch write: a record this idle has lost its writer
CLAIM_EVERY_S = 10.0
RETRY_MAX_S = 10.0
# The least time between two transactions: a record that comes sooner after the last one waits for the rest
# of it, with any others that come meanwhile. Under load that costs the worker's event loop (which streams
# the answers) a tenth of what one transaction per record does (bench/analysis.md).
WRITE_INTERVAL_S = 1.0

Entry = tuple[bytes, dict[bytes, bytes]]


class HistoryWriter:
    def __init__(self, redis: Redis, database: Database, consumer: str, claim_idle_ms: int = CLAIM_IDLE_MS) -> None:
        self._redis = redis
        self._database = database
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._own_pending = True  # at start, and after a failed write: first the records this writer holds
        self._last_claim = 0.0
        self.written = 0
        self.dropped = 0
        self._progress = asyncio.Condition()

    async def wait_written(self, count: int) -> None:
        """Until ``count`` records in all have been written (or dropped) by this writer (tests, benchmarks)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.written + self.dropped >= count)

    async def run(self) -> None:
        await self._database.schema_ready.wait()
        backoff = 0.5
        while True:
            try:
                entries = await self._next_batch()
                if entries:
                    started = time.monotonic()
                    await self._write(entries)
                    if len(entries) < BATCH:
                        await asyncio.sleep(WRITE_INTERVAL_S - (time.monotonic() - started))
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not (isinstance(exc, RedisError | OSError) or is_connection_error(exc)):
                    logger.exception("history writer failed")
                else:
                    logger.warning("history waits in Redis (%s); retrying in %.1fs", type(exc).__name__, backoff)
                self._own_pending = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)

    async def _next_batch(self) -> list[Entry]:
        if self._own_pending:
            entries = await self._read("0", block=None)
            if entries:
                return entries
            self._own_pending = False
        if time.monotonic() - self._last_claim > min(CLAIM_EVERY_S, self._claim_idle_ms / 1000):
            self._last_claim = time.monotonic()
            claimed = await self._claim_abandoned()
            if claimed:
                return claimed
        return await self._read(">", block=BLOCK_MS)

    async def _read(self, start: str, block: int | None) -> list[Entry]:
        try:
            reply = await self._redis.xreadgroup(
                WRITERS_GROUP, self._consumer, {keys.HISTORY_QUEUE: start}, count=BATCH, block=block
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._create_group()  # first start, or Redis restarted (the queue went with it)
            return []
        if not reply:
            return []
        _stream, entries = reply[0]
        return [(entry_id, fields) for entry_id, fields in entries if fields is not None]

    async def _create_group(self) -> None:
        try:
            await self._redis.xgroup_create(keys.HISTORY_QUEUE, WRITERS_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _claim_abandoned(self) -> list[Entry]:
        try:
            reply = await self._redis.xautoclaim(
                keys.HISTORY_QUEUE, WRITERS_GROUP, self._consumer, self._claim_idle_ms, start_id="0-0", count=BATCH
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._create_group()
            return []
        claimed: list[Entry] = [(entry_id, fields) for entry_id, fields in reply[1] if fields]
        if claimed:
            logger.info("claimed %d history records of a writer that stopped", len(claimed))
            self._own_pending = True
        return claimed

    async def _write(self, entries: list[Entry]) -> None:
        records: list[TurnRecord] = []
        for _entry_id, fields in entries:
            try:
                records.append(TurnRecord.model_validate_json(fields[b"r"]))
            except (KeyError, ValidationError):
                logger.error("dropped a history record that is not a TurnRecord")
        sessions = self._database.sessions
        refused = 0
        try:
            await write_turns(sessions, records)
        except Exception as exc:
            if is_connection_error(exc):
                raise
            # The database refused the batch itself: write the records one by one, and drop only those it
            # refuses alone, so that one record cannot block every later one.
            for record in records:
                try:
                    await write_turns(sessions, [record])
                except Exception as single:
                    if is_connection_error(single):
                        raise
                    refused += 1
                    logger.error("dropped the history record of turn %s (%s)", record.turn_id, type(single).__name__)
        ids = [entry_id for entry_id, _ in entries]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(keys.HISTORY_QUEUE, WRITERS_GROUP, *ids)
            pipe.xdel(keys.HISTORY_QUEUE, *ids)
            await pipe.execute()
        async with self._progress:
            self.written += len(records) - refused
            self.dropped += len(entries) - len(records) + refused
            self._progress.notify_all()
