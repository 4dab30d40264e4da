"""Starting and cancelling turns: the only things the gateway asks of the worker, all through Redis."""

from __future__ import annotations

import logging
import time
import uuid

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

from gateway.conversation_owners import ConversationOwners
from shared import keys
from shared.jobs import RUN_TURN, TurnJob, job_serializer
from shared.protocol import AcceptedEvent, AskFrame, ErrorCode, ErrorEvent, event_payload
from shared.settings import Settings
from shared.turn_events import TurnEventWriter, TurnStreamLost

logger = logging.getLogger(__name__)

BUSY_RETRY_AFTER_S = 5.0


class TurnNotAccepted(Exception):
    def __init__(self, error: ErrorEvent) -> None:
        super().__init__(error.message)
        self.error = error


# Starting a turn, in one round trip: what ``ArqRedis.enqueue_job`` writes (the job under arq's key, with its
# expiry, and its id in the queue, refused if the id exists), preceded by the bound on pending turns and the
# turn's stream with its ``accepted`` event, and followed by the id on the intake list, where a waiting worker
# takes it at once (worker/runtime/wakeable_worker.py). Done as separate calls it was six sequential round trips
# (ZCARD, the append script, WATCH/EXISTS/MULTI-EXEC, PUBLISH), each waiting for a busy gateway and a busy
# Redis before the worker even heard of the turn.
_START_TURN = """
-- KEYS[1] the queue, KEYS[2] the job's key, KEYS[3] its result key, KEYS[4] the turn's event stream,
-- KEYS[5] the intake list. ARGV[1] most pending turns, ARGV[2] the serialized job, ARGV[3] its expiry (ms),
-- ARGV[4] its score (enqueue time, ms), ARGV[5] the turn id, ARGV[6] the stream's TTL (s), ARGV[7] the
-- accepted event's JSON. Returns 'ok', 'busy' or 'exists'.
local most = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= most then return 'busy' end
if redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then return 'exists' end
redis.call('XADD', KEYS[4], '*', 't', 'accepted', 'e', ARGV[7])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[5])
-- with no worker popping, keep only as many ids as there can be pending turns (the rest are in the queue)
if redis.call('RPUSH', KEYS[5], ARGV[5]) > most then redis.call('LTRIM', KEYS[5], -most, -1) end
return 'ok'
"""


class TurnStarter:
    def __init__(self, redis: ArqRedis, settings: Settings, owners: ConversationOwners | None = None) -> None:
        self._redis = redis
        self._settings = settings
        self._owners = owners
        self.events = TurnEventWriter(redis, settings.turn_events_ttl_s, settings.max_events_per_turn)
        self._start_script = redis.register_script(_START_TURN)

    async def start(self, ask: AskFrame, reader_id: str | None = None) -> AcceptedEvent:
        """Record ``accepted`` in the turn's stream, enqueue the job and wake a worker.

        ``accepted`` is written first so the stream exists (and can be resumed) before any worker event;
        the job id is the turn id, so a duplicate enqueue of the same turn is impossible.
        """
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
            reader_id=reader_id,
            new_conversation=new_conversation,
            enqueued_at=received,
        )
        enqueue_ms = timestamp_ms()
        outcome = await self._start_script(
            keys=[
                keys.QUEUE_NAME,
                job_key_prefix + turn_id,
                result_key_prefix + turn_id,
                keys.turn_events(turn_id),
                keys.TURN_INTAKE,
            ],
            args=[
                self._settings.max_pending_turns,
                serialize_job(
                    RUN_TURN, (job.model_dump(mode="json"),), {}, None, enqueue_ms, serializer=job_serializer
                ),
                int(self._settings.turn_timeout_s * 1000),
                enqueue_ms,
                turn_id,
                self._settings.turn_events_ttl_s,
                event_payload(accepted),
            ],
        )
        if outcome == b"busy":
            # Refuse at once rather than queue an answer that would arrive too late to matter.
            raise TurnNotAccepted(
                ErrorEvent(
                    turn_id=None,
                    code=ErrorCode.BUSY,
                    message="the tutor is answering many questions right now; please ask again shortly",
                    retry_after=BUSY_RETRY_AFTER_S,
                )
            )
        if outcome != b"ok":  # the id existed (a uuid4 collision): refuse rather than run twice
            raise TurnNotAccepted(ErrorEvent(turn_id=None, code=ErrorCode.INTERNAL, message="the turn could not start"))
        return accepted

    async def exists(self, turn_id: str) -> bool:
        return bool(await self._redis.exists(keys.turn_events(turn_id)))

    async def cancel(self, turn_id: str, message: str = "the turn was cancelled") -> bool:
        """End the turn with ``cancelled`` (unless it already ended) and stop its job.

        The terminal event is written here, not left to the worker, so the client gets its answer at
        once even when the job has not started yet (arq then never runs it) or its worker is gone.
        """
        try:
            ended = await self.events.append(
                turn_id, [ErrorEvent(turn_id=turn_id, code=ErrorCode.CANCELLED, message=message)]
            )
        except TurnStreamLost:
            ended = None
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(abort_jobs_ss, {turn_id: timestamp_ms()})
            pipe.publish(keys.WAKE_CHANNEL, b"abort")
            await pipe.execute()
        logger.info("turn %s cancelled (%s)", turn_id, "ended now" if ended else "had already ended")
        return ended is not None
