"""Payloads of the arq jobs the gateway enqueues and the worker runs.

Jobs carry JSON (``job_serializer``/``job_deserializer`` below), never pickles: a pickle from Redis is
code execution for whoever can write to Redis.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict

RUN_TURN = "run_turn"
REINDEX = "reindex"

ReindexMode = Literal["full", "incremental"]
ReindexTrigger = Literal["api", "cli", "schedule", "startup"]


class ReindexJob(BaseModel):
    """Rebuild the knowledge base from ``source`` as a new version (see worker/reindex/job.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["reindex"] = "reindex"
    job_id: str
    source: str
    """A folder of Markdown or a sitemap URL (BOOK_SOURCE unless the request named another)."""
    mode: ReindexMode = "full"
    trigger: ReindexTrigger = "api"
    requested_at: float


class TurnJob(BaseModel):
    """One chat turn: the question and what the worker needs to answer it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["turn"] = "turn"
    turn_id: str
    conversation_id: str
    question: str
    selected_text: str | None = None
    language: str | None = None
    """The ask's BCP 47 tag, already validated and normalised; None: detect it from the question."""
    level: Literal["beginner", "intermediate", "advanced"] | None = None
    reader_id: str | None = None
    """The reader the turn belongs to (their socket said ``hello``); None: it is kept under no reader."""
    new_conversation: bool = False
    """The gateway started this conversation with this turn: there is no earlier turn to remember."""
    enqueued_at: float
    """Gateway wall-clock time (seconds) when the ask was received; measures the queue hop."""


def job_serializer(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def job_deserializer(value: bytes) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(value)
    return result
