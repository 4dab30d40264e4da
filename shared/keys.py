"""Every Redis key, stream and channel the service uses, in one place.

All names share the ``tutor:`` prefix so the service can share a Redis with other software and so
``redis-cli --scan --pattern 'tutor:*'`` shows exactly what it owns. arq's own keys (``arq:*``) are
managed by arq; only the queue name is ours.
"""

from __future__ import annotations

PREFIX = "tutor"

# arq's sorted-set queue. A name of our own (not arq's default) so that a second arq application on
# the same Redis never picks up our jobs.
QUEUE_NAME = f"{PREFIX}:queue"

# Sorted set of the turns accepted and not yet ended (queued or running), the bound MAX_PENDING_TURNS is
# checked against. A turn leaves it with its terminal event; the score (when the entry lapses, ms) clears
# one whose end was lost. Ours, not arq's queue, so the gateway reads nothing of arq's.
PENDING_TURNS = f"{PREFIX}:pending"

# Prefix of each worker's heartbeat key (JSON status, short TTL). The gateway's /ready reads these:
# the gateway must not open Qdrant itself, so the worker reports whether the collection exists.
WORKER_HEARTBEAT_PREFIX = f"{PREFIX}:worker:"


def turn_events(turn_id: str) -> str:
    """Stream of one turn's events. A stream (not pub/sub) so events written before anyone reads,
    or while a client is reconnecting, are still there; it expires ``turn_events_ttl_s`` after the
    last write."""
    return f"{PREFIX}:turn:{turn_id}:events"


def turn_ended(turn_id: str) -> str:
    """Set once, by whoever writes the turn's terminal event, so there is exactly one ``done``/``error``."""
    return f"{PREFIX}:turn:{turn_id}:ended"


def turn_ask(turn_id: str) -> str:
    """The turn's ask as the worker receives it (a ``TurnJob``), written with ``accepted`` and expiring with the
    turn's stream: what the gateway needs to record a turn it ends itself (shared/ended_turns.py)."""
    return f"{PREFIX}:turn:{turn_id}:ask"


def turn_retried(turn_id: str) -> str:
    """Set once, by the gateway's reaper, when a turn whose worker died before its first delta is handed to
    another worker (arq's second try); a turn is started again at most once."""
    return f"{PREFIX}:turn:{turn_id}:retried"


def turn_owner(turn_id: str) -> str:
    """Which try of the turn may write its events: a token the worker running it sets when it starts. The reaper
    deletes it when it hands the turn on, so a first try that was only stalled finds its writes refused, then or
    after the second try has ended the turn; it lapses a minute after the turn's timeout."""
    return f"{PREFIX}:turn:{turn_id}:owner"


def conversation(conversation_id: str) -> str:
    """List of a conversation's last turns (JSON), newest last, trimmed and expiring."""
    return f"{PREFIX}:conversation:{conversation_id}"


def conversation_owner(conversation_id: str) -> str:
    """The reader a conversation belongs to ("-" when it belongs to none), so an ask naming it is checked
    without the database; expires with the conversation's memory, and the database answers after that."""
    return f"{PREFIX}:conversation:{conversation_id}:owner"


# Finished turns waiting to be written to the database (shared/history.py): a stream read by the workers'
# history writers through one consumer group, each entry deleted once the database has it.
HISTORY_QUEUE = f"{PREFIX}:history"

# Sorted set of the turns that have ended but whose record is not in HISTORY_QUEUE yet, scored by when they
# ended (Redis's clock): the terminal event adds a turn in the same script that writes it, queuing its record
# removes it. One left behind lost its recorder (a process killed between the two) and is recorded late.
UNRECORDED_TURNS = f"{PREFIX}:history:unrecorded"


def gateway_wake(gateway_id: str) -> str:
    """Stream that one gateway's relay includes in its blocking XREAD, so a new subscription can
    interrupt the read at once without closing the connection."""
    return f"{PREFIX}:gateway:{gateway_id}:wake"


def worker_heartbeat(worker_id: str) -> str:
    return f"{WORKER_HEARTBEAT_PREFIX}{worker_id}"


# Benchmarks only (RECORD_TIMINGS=1): milliseconds from "gateway received the ask" to "worker started the
# turn", one entry per turn, capped.
TIMINGS_HOP = f"{PREFIX}:timings:hop_ms"


def rate_limit(scope: str, subject: str) -> str:
    """GCRA state of one subject (a client address, or a Cohere endpoint) for one limit."""
    return f"{PREFIX}:rate:{scope}:{subject}"


# Each worker's set of turns in flight, and the set of workers that have such a set. When a worker's
# heartbeat expires (SIGKILL, OOM), the gateway's reaper ends its turns with ``worker_lost`` at once
# instead of leaving clients waiting for arq's in-progress expiry.
WORKERS_WITH_TURNS = f"{PREFIX}:workers"


def worker_turns(worker_id: str) -> str:
    return f"{PREFIX}:worker-turns:{worker_id}"


def worker_listed_turn(worker_id: str) -> str:
    """Set for a heartbeat's TTL whenever a worker lists a turn: a sign of life besides the heartbeat, which a
    Redis restart loses until the worker's next beat (shared/worker_turns.py). Not under the heartbeat prefix,
    which /ready scans."""
    return f"{PREFIX}:worker-listed-turn:{worker_id}"


# Re-indexing the knowledge base (shared/reindex.py). The lock holds the running job's id with a lease,
# so there is one re-index at a time across every worker and a dead worker's lock runs out by itself.
REINDEX_LOCK = f"{PREFIX}:reindex:lock"
# The id of the last re-index requested (what `tutor-reindex --follow` shows when given no id).
REINDEX_LATEST = f"{PREFIX}:reindex:latest"


# Why the worker's first indexing failed (shared/health.py IndexingFailure): written by the worker while it
# retries, read by the gateway's /ready, so an operator sees what to change without reading the worker's log.
INDEXING_FAILURE = f"{PREFIX}:indexing:failure"


def reindex_progress(job_id: str) -> str:
    """JSON progress report of one re-index job (ReindexProgress), kept a week after it was last written."""
    return f"{PREFIX}:reindex:{job_id}"
