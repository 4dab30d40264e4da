"""The worker's outgoing events: every turn writes through one batcher, one Redis call at a time.

A turn's first delta goes out at once (time to first token is what a reader feels). While a write is in
flight, whatever any turn produces waits, and the next write carries all of it: a turn's waiting tokens
become one delta event, and the turns share the one call. With one turn in flight every token is its own
write; with a hundred, one Redis round trip carries a token or two for each of them, so the Redis cost per
token falls as load rises instead of the writes queueing (bench/analysis.md, item 7).
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from shared.protocol import (
    TERMINAL_TYPES,
    CitationEvent,
    DeltaEvent,
    DoneEvent,
    ErrorCode,
    ErrorEvent,
    Source,
    SourcesEvent,
    _Event,
)
from shared.turn_events import AppendOutcome, TurnAppend, TurnEventWriter, TurnHandedOn

Written = AppendOutcome | BaseException
"""What became of a turn's part of a write: its outcome, or the error of the whole write (Redis gone)."""


class TurnEnded(Exception):
    """The turn already has its terminal event (cancelled, timed out elsewhere): stop producing."""


class WriterStopped(Exception):
    """The batcher's task was cancelled (the worker is stopping): these events may not be in Redis."""


class EventBatcher:
    """Writes what the turns queue; at most one write in flight for the whole worker."""

    def __init__(self, writer: TurnEventWriter) -> None:
        self._writer = writer
        self._queued: dict[int, TurnEventSink] = {}  # by identity: two sinks of one turn stay apart
        self._flusher: asyncio.Task[None] | None = None
        self.writes = 0  # Redis calls made (tests compare them with the events written)

    def sink(self, turn_id: str, owner: str | None = None) -> TurnEventSink:
        """``owner``: the try's token (``keys.turn_owner``); every write of the sink is refused once it is not."""
        return TurnEventSink(self, turn_id, owner)

    def _schedule(self, sink: TurnEventSink) -> None:
        self._queued[id(sink)] = sink
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="event-batcher")

    def _unschedule(self, sink: TurnEventSink) -> None:
        self._queued.pop(id(sink), None)

    async def _flush(self) -> None:
        taken: list[tuple[TurnEventSink, list[_Event], list[asyncio.Future[Written]]]] = []
        try:
            while self._queued:
                sinks = list(self._queued.values())
                self._queued.clear()
                taken = [(sink, *sink._take()) for sink in sinks]
                outcomes: list[Written]
                try:
                    self.writes += 1
                    outcomes = list(
                        await self._writer.append_many([TurnAppend(s.turn_id, ev, s.owner) for s, ev, _ in taken])
                    )
                except Exception as exc:  # Redis gone: each turn of this write learns it
                    outcomes = [exc] * len(taken)
                for (sink, events, waiters), outcome in zip(taken, outcomes, strict=True):
                    sink._written(outcome, events)
                    _settle(waiters, outcome)
                taken = []
        except BaseException:
            # Cancelled (the worker stopping) or a bug here: whatever was taken or is queued must still
            # be answered, or its turn would wait for ever.
            stopped = WriterStopped("the event writer stopped")
            for sink, events, waiters in taken:
                sink._written(stopped, events)
                _settle(waiters, stopped)
            for sink in list(self._queued.values()):
                sink._written(stopped, [])
            raise


def _settle(waiters: list[asyncio.Future[Written]], outcome: Written) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(outcome)


class TurnEventSink:
    """One turn's events, in order: deltas accumulate until the batcher takes them."""

    def __init__(self, batcher: EventBatcher, turn_id: str, owner: str | None = None) -> None:
        self._batcher = batcher
        self.turn_id = turn_id
        self.owner = owner
        self._queue: list[_Event] = []
        self._text: list[str] = []  # tokens of the delta being built, after the queued events
        self._waiters: list[asyncio.Future[Written]] = []  # settled by the write that takes the queue
        self._last_write: asyncio.Future[Written] | None = None
        self._answer: list[str] = []
        self.ended = False
        self.error: BaseException | None = None
        # what the turn's history record keeps (worker/turn_records.py)
        self.first_delta_at: float | None = None
        self.sources: list[Source] = []
        self.citations: list[CitationEvent] = []
        self.grounded: bool | None = None  # from ``done``: whether the answer was drawn from the book
        self.outcome: Literal["done"] | ErrorCode | None = None
        """How the turn ended, when this sink wrote its terminal event (None: it did not, or not yet)."""

    @property
    def answer(self) -> str:
        return "".join(self._answer)

    @property
    def handed_on(self) -> bool:
        """Whether a write was refused because the turn belongs to another try now (nothing more goes out)."""
        return isinstance(self.error, TurnHandedOn)

    def _check(self) -> None:
        if self.error is not None:
            raise self.error
        if self.ended:
            raise TurnEnded

    def delta(self, text: str) -> None:
        self._check()
        if self.first_delta_at is None:
            self.first_delta_at = time.time()
        self._answer.append(text)
        self._text.append(text)
        self._batcher._schedule(self)

    async def drain(self) -> None:
        """Wait until everything queued so far is in Redis (events after it must not overtake it)."""
        if self._queue or self._text:
            await self._next_write()
        elif self._last_write is not None and not self._last_write.done():
            await asyncio.shield(self._last_write)
        self._check()

    async def emit(self, event: _Event) -> None:
        self._check()
        if isinstance(event, SourcesEvent):
            self.sources = event.sources
        elif isinstance(event, CitationEvent):
            self.citations.append(event)
        elif isinstance(event, DoneEvent):
            self.grounded = event.grounded
        self._close_delta()
        self._queue.append(event)
        self._batcher._schedule(self)
        outcome = await self._next_write()
        if outcome is None:
            raise TurnEnded  # refused: the turn had ended elsewhere
        if isinstance(outcome, BaseException):
            raise outcome

    async def fail(self, error: _Event) -> None:
        """End the turn with ``error``: drop unsent deltas and write it (refused if the turn already ended).
        Raises the write's error (``TurnStreamLost``, a Redis error), not an earlier one."""
        self._text.clear()
        self._queue = [e for e in self._queue if not isinstance(e, DeltaEvent)]
        self._queue.append(error)
        self._batcher._schedule(self)
        outcome = await self._next_write()
        if isinstance(outcome, BaseException):
            raise outcome

    async def _next_write(self) -> Written:
        waiter: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await asyncio.shield(waiter)  # a cancelled turn must not cancel the others' write

    def _close_delta(self) -> None:
        if self._text:
            self._queue.append(DeltaEvent(turn_id=self.turn_id, text="".join(self._text)))
            self._text.clear()

    def _take(self) -> tuple[list[_Event], list[asyncio.Future[Written]]]:
        self._close_delta()
        events, waiters = self._queue, self._waiters
        self._queue, self._waiters = [], []
        self._last_write = asyncio.get_running_loop().create_future()
        waiters.append(self._last_write)
        return events, waiters

    def _written(self, outcome: Written, events: list[_Event]) -> None:
        if outcome is None or (isinstance(outcome, list) and any(e.type in TERMINAL_TYPES for e in events)):  # type: ignore[attr-defined]
            self.ended = True  # refused, or this write ended the turn
            if outcome is not None:
                self.outcome = next(
                    "done" if isinstance(e, DoneEvent) else e.code
                    for e in events
                    if isinstance(e, DoneEvent | ErrorEvent)
                )
            self._text.clear()
            self._queue.clear()
        elif isinstance(outcome, BaseException):
            # This write's events are not in Redis: nothing queued after them may go out (a hole in the
            # turn). Drop it, answer whoever waits for it, and let the turn end through ``fail``.
            if self.error is None:
                self.error = outcome
            self._text.clear()
            ending: list[_Event] = [e for e in self._queue if isinstance(e, ErrorEvent)]
            if ending:  # ``fail`` was called meanwhile: its error still goes out, alone
                self._queue = ending[-1:]
                return
            self._queue.clear()
            self._batcher._unschedule(self)
            waiters, self._waiters = self._waiters, []
            _settle(waiters, outcome)
