"""A turn's outgoing events, with deltas coalesced while a write is in flight.

The first delta is written at once (time to first token is what a reader feels); while that write is in
flight, further tokens collect and go out together as one event. Under light load every token is its own
event; under heavy load events get larger instead of queueing, so per-token Redis cost stays bounded.
"""

from __future__ import annotations

import asyncio

from shared.protocol import DeltaEvent, _Event
from shared.turn_events import TurnEventWriter


class TurnEnded(Exception):
    """The turn already has its terminal event (cancelled, timed out elsewhere): stop producing."""


class TurnEventSink:
    def __init__(self, writer: TurnEventWriter, turn_id: str) -> None:
        self._writer = writer
        self.turn_id = turn_id
        self._pending: list[str] = []
        self._answer: list[str] = []
        self._flusher: asyncio.Task[None] | None = None
        self.ended = False
        self.deltas_written = 0

    @property
    def answer(self) -> str:
        return "".join(self._answer)

    def delta(self, text: str) -> None:
        if self.ended:
            raise TurnEnded
        flusher = self._flusher
        if flusher is not None and flusher.done() and flusher.exception() is not None:
            raise flusher.exception()  # type: ignore[misc]
        self._answer.append(text)
        self._pending.append(text)
        if flusher is None or flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            ids = await self._writer.append(self.turn_id, [DeltaEvent(turn_id=self.turn_id, text=text)])
            if ids is None:
                self.ended = True
                self._pending.clear()
                return
            self.deltas_written += 1

    async def drain(self) -> None:
        """Wait until every delta so far is in Redis (events after it must not overtake it)."""
        if self._flusher is not None:
            await self._flusher
        if self.ended:
            raise TurnEnded

    async def emit(self, event: _Event) -> None:
        await self.drain()
        if await self._writer.append(self.turn_id, [event]) is None:
            self.ended = True
            raise TurnEnded

    async def fail(self, error: _Event) -> None:
        """End the turn with ``error``: drop unsent deltas and write it (refused if the turn already ended)."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        self._pending.clear()
        await self._writer.append(self.turn_id, [error])
