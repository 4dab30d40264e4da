"""Test data of the durable memory: turn records and readers, made in one place."""

from __future__ import annotations

import time
import uuid
from typing import Any

from shared.db.database import Database
from shared.db.readers import create_reader
from shared.history import CitationRecord, TurnRecord
from shared.protocol import Source


def a_source(source_id: str = "s1") -> Source:
    return Source(
        id=source_id,
        doc="intro.md",
        title="Introduction",
        heading="What is Physical AI",
        url="/docs/intro#what-is-physical-ai",
        snippet="Physical AI is…",
        score=0.5,
    )


def a_turn_record(**overrides: Any) -> TurnRecord:
    now = time.time()
    values: dict[str, Any] = {
        "turn_id": uuid.uuid4().hex,
        "conversation_id": uuid.uuid4().hex,
        "reader_id": None,
        "question": "What is Physical AI?",
        "selected_text": None,
        "answer": "Physical AI is AI that acts in the world.",
        "sources": [a_source()],
        "citations": [CitationRecord(start=0, end=11, text="Physical AI", source_ids=["s1"])],
        "provider": "offline",
        "status": "done",
        "first_delta_ms": 12.5,
        "total_ms": 80.0,
        "asked_at": now - 0.08,
        "finished_at": now,
    }
    values.update(overrides)
    return TurnRecord(**values)


async def a_reader(database: Database) -> tuple[str, str]:
    """A new reader's (id, token)."""
    created = await create_reader(database.sessions)
    return created.reader_id, created.reader_token
