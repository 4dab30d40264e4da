"""Starting and cancelling turns: the only things the gateway asks of the worker, all through Redis."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid

from arq.connections import ArqRedis
from arq.jobs import Job

from gateway.conversation_owners import ConversationOwners
from shared import keys
from shared.ended_turns import end_turn
from shared.jobs import RUN_TURN, TurnJob, job_deserializer
from shared.protocol import AcceptedEvent, AskFrame, ErrorCode, ErrorEvent, event_payload
from shared.settings import Settings
from shared.turn_events import TurnEventWriter, TurnStreamLost

logger = logging.getLogger(__name__)

BUSY_RETRY_AFTER_S = 5.0
# A pending turn normally leaves the set with its terminal event; this is for one whose end was lost.
PENDING_LAPSE_S = 60.0

# The bound on pending turns and the ``accepted`` event in one atomic step, on our own keys: two gateways
# can never both take the last place, and the stream exists before any event of the worker's. The ask is
# kept beside the stream, so that whoever ends the turn can record it (shared/ended_turns.py).
_ACCEPT = """
-- KEYS[1] the pending turns (score: when an entry lapses, ms), KEYS[2] the turn's event stream, KEYS[3] its ask.
-- ARGV[1] most pending turns, ARGV[2] now (ms), ARGV[3] when this entry lapses (ms), ARGV[4] the turn id,
-- ARGV[5] the stream's TTL (s), ARGV[6] the accepted event's JSON, ARGV[7] the ask's JSON. Returns 'ok' or 'busy'.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 'busy' end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('XADD', KEYS[2], '*', 't', 'accepted', 'e', ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[3], ARGV[7], 'EX', ARGV[5])
return 'ok'
"""


class TurnNotAccepted(Exception):
    def __init__(self, error: ErrorEvent) -> None:
        super().__init__(error.message)
        self.error = error


class TurnStarter:
    def __init__(self, redis: ArqRedis, settings: Settings, owners: ConversationOwners | None = None) -> None:
        self._redis = redis
        self._settings = settings
        self._owners = owners
        self.events = TurnEventWriter(redis, settings.turn_events_ttl_s, settings.max_events_per_turn)
        self._accept = redis.register_script(_ACCEPT)

    async def start(self, ask: AskFrame, reader_id: str | None = None) -> AcceptedEvent:
        """Record ``accepted`` in the turn's stream (within the bound on pending turns), then enqueue the job
        with arq, its id the turn's id."""
        received = time.time()
        turn_id = uuid.uuid4().hex
        if self._owners is not None:
            # an ask naming another reader's conversation starts a new one (gateway/conversation_owners.py)
            claim = await self._owners.claim(ask.conversation_id, reader_id)
            conversation_id, new_conversation = claim.conversation_id, claim.new
        else:
            conversation_id, new_conversation = ask.conversation_id or uuid.uuid4().hex, ask.conversation_id is None
        accepted = AcceptedEvent(turn_id=turn_id, conversation_id=conversation_id)
        job = TurnJob(
            turn_id=turn_id,
            conversation_id=conversation_id,
            question=ask.question,
            selected_text=ask.selected_text,
            language=ask.language,
            level=ask.level,
            reader_id=reader_id,
            new_conversation=new_conversation,
            enqueued_at=received,
        )
        now_ms = int(received * 1000)
        outcome = await self._accept(
            keys=[keys.PENDING_TURNS, keys.turn_events(turn_id), keys.turn_ask(turn_id)],
            args=[
                self._settings.max_pending_turns,
                now_ms,
                now_ms + int((self._settings.turn_timeout_s + PENDING_LAPSE_S) * 1000),
                turn_id,
                self._settings.turn_events_ttl_s,
                event_payload(accepted),
                job.model_dump_json(),
            ],
        )
        if outcome != b"ok":
            # Refuse at once rather than queue an answer that would arrive too late to matter.
            raise TurnNotAccepted(
                ErrorEvent(
                    turn_id=None,
                    code=ErrorCode.BUSY,
                    message="the tutor is answering many questions right now; please ask again shortly",
                    retry_after=BUSY_RETRY_AFTER_S,
                )
            )
        try:
            enqueued = await self._redis.enqueue_job(
                RUN_TURN, job.model_dump(mode="json"), _job_id=turn_id, _expires=self._settings.turn_timeout_s
            )
        except BaseException:
            await self._end_unqueued(turn_id)
            raise
        if enqueued is None:  # the id existed (a uuid4 collision): refuse rather than run twice
            await self._end_unqueued(turn_id)
            raise TurnNotAccepted(ErrorEvent(turn_id=None, code=ErrorCode.INTERNAL, message="the turn could not start"))
        return accepted

    async def _end_unqueued(self, turn_id: str) -> None:
        """A turn accepted but never queued: its stream ends (and it leaves the pending set) here."""
        error = ErrorEvent(turn_id=turn_id, code=ErrorCode.INTERNAL, message="the turn could not start")
        with contextlib.suppress(Exception):
            await self.end(error)

    async def end(self, error: ErrorEvent) -> bool:
        """End the turn with ``error`` unless it has ended, recording it in history if this call ended it.
        Raises ``TurnStreamLost`` when Redis lost the turn."""
        return await end_turn(self._redis, self.events, error, self._settings.provider)

    async def exists(self, turn_id: str) -> bool:
        return bool(await self._redis.exists(keys.turn_events(turn_id)))

    async def cancel(self, turn_id: str, message: str = "the turn was cancelled") -> bool:
        """End the turn with ``cancelled`` (unless it already ended) and abort its job.

        The terminal event is written here, not left to the worker, so the client gets its answer at
        once even when the job has not started yet (arq then never runs it) or its worker is gone.
        """
        try:
            ended = await self.end(ErrorEvent(turn_id=turn_id, code=ErrorCode.CANCELLED, message=message))
        except TurnStreamLost:
            ended = False
        await abort_job(self._redis, turn_id)
        logger.info("turn %s cancelled (%s)", turn_id, "ended now" if ended else "had already ended")
        return ended


async def abort_job(redis: ArqRedis, job_id: str) -> None:
    """Ask arq to abort a job (its worker cancels it at its next poll), without waiting for the outcome."""
    with contextlib.suppress(TimeoutError):
        job = Job(job_id, redis, _queue_name=keys.QUEUE_NAME, _deserializer=job_deserializer)
        await job.abort(timeout=0, poll_delay=0)
