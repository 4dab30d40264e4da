"""One Redis reader per gateway process, fanning turn events out to the sockets that watch them.

Every watched turn is a Redis stream. A single task runs one blocking ``XREAD`` over all of them (plus
this process's own *wake* stream) and hands each entry, already rendered as the JSON text frame the
client receives, to every subscription of that turn. A new subscription appends to the wake stream so
that the blocked read returns at once and the next read includes the new turn: no connection per
socket, no polling, and nothing is missed because streams keep what was written before anyone read.

Because that read is shared, nothing one turn does may fail it: an id is checked before it joins the
read, and a stream Redis refuses to read ends only its own subscriptions (with an ``error`` event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from shared import keys
from shared.protocol import ErrorCode, ErrorEvent
from shared.turn_events import is_terminal_type

logger = logging.getLogger(__name__)

StreamId = tuple[int, int]
ZERO_ID: StreamId = (0, 0)
# Reads failing this many times in a row make the relay count as failing (/ready, /metrics).
FAILING_AFTER = 3


def parse_stream_id(value: str | bytes) -> StreamId:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def render_frame(entry_id: bytes, payload: bytes) -> str:
    """Insert the stream entry id as the event's ``id`` into the stored JSON object (which the writer
    produced without one), without a parse/serialise round trip on the hot path."""
    return '{"id":"' + entry_id.decode() + '",' + payload[1:].decode()


@dataclass(eq=False)
class Subscription:
    """One consumer of one turn's events. ``deliver`` is called by the relay for every frame in order;
    ``terminal`` is set once the turn's last event has been delivered."""

    turn_id: str
    deliver: Callable[[str, bool], None]
    last_id: StreamId = ZERO_ID
    terminal: asyncio.Event = field(default_factory=asyncio.Event)

    def end_locally(self, error: ErrorEvent) -> None:
        """End the subscription with an event that exists only here, because Redis lost the turn (it
        restarted): the id continues the client's sequence so that resume logic stays simple."""
        if self.terminal.is_set():
            return
        ms, seq = self.last_id
        self.last_id = (ms, seq + 1)
        event = error.model_copy(update={"id": f"{ms}-{seq + 1}"})
        self.deliver(event.model_dump_json(), True)
        self.terminal.set()

    def accept(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        stream_id = parse_stream_id(entry_id)
        if stream_id <= self.last_id or self.terminal.is_set():
            return  # already delivered (a backfill and a live read can overlap)
        self.last_id = stream_id
        terminal = is_terminal_type(fields[b"t"])
        self.deliver(render_frame(entry_id, fields[b"e"]), terminal)
        if terminal:
            self.terminal.set()


class TurnRelay:
    def __init__(self, redis_url: str, writer: Redis, *, block_ms: int = 5_000, batch: int = 500) -> None:
        # The reader blocks for block_ms at a time, so it gets a connection of its own with no socket
        # timeout shorter than that; everything else goes through the shared pool (``writer``).
        self._reader: Redis = Redis.from_url(
            redis_url, socket_timeout=None, socket_connect_timeout=5, single_connection_client=True
        )
        self._writer = writer
        self._gateway_id = uuid.uuid4().hex
        self._wake_key = keys.gateway_wake(self._gateway_id)
        self._wake_cursor = b"0-0"
        self._block_ms = block_ms
        self._batch = batch
        self._cursors: dict[str, bytes] = {}
        self._subs: dict[str, list[Subscription]] = {}
        self._pending: list[Subscription] = []
        self._blocked = False
        self._wake_sent = False
        self._wakes: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._lost_redis = False
        self.events_relayed = 0
        self.read_failures = 0
        self.consecutive_failures = 0
        self.turns_unreadable = 0
        self.connected = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="turn-relay")

    async def stop(self) -> None:
        wakes = list(self._wakes)
        for wake in wakes:
            wake.cancel()
        if wakes:
            # let each unwind (its pipeline gives its connection back) before the loop goes away
            await asyncio.wait(wakes, timeout=2.0)
        if self._task is not None:
            self._task.cancel()
            # Bounded: a cancellation delivered inside a Redis call can be swallowed by the client, and a
            # shutdown must not wait for ever on it (the process is going away; the task goes with it).
            await asyncio.wait({self._task}, timeout=2.0)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self._writer.delete(self._wake_key)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self._reader.aclose()

    @property
    def failing(self) -> bool:
        """Reads keep failing, or the read loop has stopped: no socket of this process gets events."""
        stopped = self._task is not None and self._task.done()
        return stopped or self.consecutive_failures >= FAILING_AFTER

    def watched_turns(self) -> int:
        return len(self._subs) + len(self._pending)

    def has_subscribers(self, turn_id: str) -> bool:
        key = keys.turn_events(turn_id)
        return bool(self._subs.get(key)) or any(s.turn_id == turn_id for s in self._pending)

    # --- subscriptions -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(
        self, turn_id: str, deliver: Callable[[str, bool], None], after: str | None = None
    ) -> AsyncIterator[Subscription]:
        """Deliver the turn's events after ``after`` (all of them when None), then live ones, until the
        terminal event or until the context exits."""
        sub = Subscription(turn_id, deliver, parse_stream_id(after) if after else ZERO_ID)
        self._pending.append(sub)
        self._interrupt_read()
        try:
            yield sub
        finally:
            self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._pending:
            self._pending.remove(sub)
            return
        key = keys.turn_events(sub.turn_id)
        subs = self._subs.get(key)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                self._forget(key)

    def _forget(self, key: str) -> None:
        self._subs.pop(key, None)
        self._cursors.pop(key, None)

    def _interrupt_read(self) -> None:
        """Make the blocked read return, so that the next one includes the new subscription. The wake-up is
        written by a task of the relay's own, not by the subscriber: a subscriber cancelled mid-write (a
        second ``resume`` of a turn cancels the first) would otherwise leave the mark set and nothing
        written, and every new subscription waiting out the whole block."""
        if self._blocked and not self._wake_sent:
            self._wake_sent = True
            wake = asyncio.create_task(self._write_wake(), name="relay-wake")
            self._wakes.add(wake)
            wake.add_done_callback(self._wakes.discard)

    async def _write_wake(self) -> None:
        try:
            async with self._writer.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {b"w": b"1"}, maxlen=16, approximate=True)
                pipe.expire(self._wake_key, 3600)
                await pipe.execute()
        except (RedisError, OSError):
            # The read will return by itself within block_ms; the subscription is only late.
            self._wake_sent = False
            logger.warning("could not wake the relay; a subscription waits for the next read")

    # --- the read loop -----------------------------------------------------------------------------

    async def _attach_pending(self) -> None:
        pending, self._pending = self._pending, []
        for sub in pending:
            key = keys.turn_events(sub.turn_id)
            try:
                await self._attach(key, sub)
            except ResponseError:
                sub.end_locally(unreadable(sub.turn_id))
                self.turns_unreadable += 1

    async def _attach(self, key: str, sub: Subscription) -> None:
        if sub.last_id > ZERO_ID:
            # A resume: its position must be one of the turn's events, or the shared cursor of the turn
            # could be set past the stream's end (no live event would ever reach its subscribers).
            last = await self._reader.xrevrange(key, count=1)
            if last and parse_stream_id(last[0][0]) < sub.last_id:
                sub.end_locally(
                    ErrorEvent(
                        turn_id=sub.turn_id,
                        code=ErrorCode.INVALID_FRAME,
                        message="resume: after is past the turn's last event",
                    )
                )
                return
        cursor = self._cursors.get(key)
        if cursor is None:
            # Not yet read by this process: the next XREAD starts from the subscriber's position.
            self._cursors[key] = b"%d-%d" % sub.last_id
        elif parse_stream_id(cursor) > sub.last_id:
            # Others are further along: replay what this subscriber missed up to their position.
            start = b"(%d-%d" % sub.last_id
            for entry_id, fields in await self._reader.xrange(key, min=start, max=cursor):
                sub.accept(entry_id, fields)
        if not sub.terminal.is_set():
            self._subs.setdefault(key, []).append(sub)

    async def _end_unreadable_streams(self) -> bool:
        """Redis refused the shared read. Read each stream alone (without blocking) to find the ones it
        refuses, and end their subscriptions, so that the others' next read succeeds. False when no
        stream is to blame: the read itself fails (this process's own wake stream, read as a control,
        is refused too)."""
        watched = list(self._cursors.items())
        async with self._writer.pipeline(transaction=False) as pipe:
            pipe.xread({self._wake_key: self._wake_cursor}, count=1)
            for key, cursor in watched:
                pipe.xread({key: cursor}, count=1)
            control, *results = await pipe.execute(raise_on_error=False)
        if isinstance(control, ResponseError):
            return False
        found = False
        for (key, _), result in zip(watched, results, strict=True):
            if isinstance(result, ResponseError):
                found = True
                self.turns_unreadable += 1
                logger.warning("relay: Redis refuses to read %s (%s); its subscribers get an error", key, result)
                for sub in list(self._subs.get(key, [])):
                    sub.end_locally(unreadable(sub.turn_id))
                self._forget(key)
        return found

    async def _end_vanished_turns(self) -> None:
        """After Redis came back: turns whose streams are gone (Redis keeps nothing across a restart) can
        never end by themselves, so end them here with a clear error instead of letting clients hang."""
        for key, subs in list(self._subs.items()):
            if await self._reader.exists(key):
                continue
            for sub in list(subs):
                sub.end_locally(
                    ErrorEvent(
                        turn_id=sub.turn_id,
                        code=ErrorCode.UNAVAILABLE,
                        message="the service restarted while answering; please ask again",
                    )
                )
            self._forget(key)

    async def _read_once(self) -> None:
        if self._lost_redis:
            await self._end_vanished_turns()
            self._lost_redis = False
        await self._attach_pending()
        streams: dict[Any, Any] = {self._wake_key: self._wake_cursor}
        streams.update(self._cursors)
        self._blocked, self._wake_sent = True, False
        try:
            response = await self._reader.xread(streams, count=self._batch, block=self._block_ms)
        finally:
            self._blocked = False
        for raw_key, entries in response or []:
            key = raw_key.decode()
            if key == self._wake_key:
                self._wake_cursor = entries[-1][0]
                continue
            subs = self._subs.get(key)
            if not subs:
                self._forget(key)
                continue
            self._cursors[key] = entries[-1][0]
            self.events_relayed += len(entries)
            for entry_id, fields in entries:
                for sub in list(subs):
                    sub.accept(entry_id, fields)
            if all(sub.terminal.is_set() for sub in subs):
                self._forget(key)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                try:
                    await self._read_once()
                except ResponseError:
                    if not await self._end_unreadable_streams():
                        raise
                self.connected.set()
                self.consecutive_failures = 0
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._count_failure()
                if not isinstance(exc, ResponseError):
                    self.connected.clear()
                    self._lost_redis = True
                logger.warning("relay read failed (%s); retrying in %.2fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                self._count_failure()
                logger.exception("relay read failed; continuing")
                await asyncio.sleep(0.1)

    def _count_failure(self) -> None:
        self.read_failures += 1
        self.consecutive_failures += 1


def unreadable(turn_id: str) -> ErrorEvent:
    return ErrorEvent(
        turn_id=turn_id, code=ErrorCode.INTERNAL, message="this turn's events cannot be read; please ask again"
    )
