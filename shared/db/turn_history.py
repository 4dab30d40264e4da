"""Writing finished turns, and reading a conversation's last exchanges back for the model's memory."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import TITLE_CHARS, Conversation, Reader, Turn
from shared.db.text import storable, storable_json, storable_or_none
from shared.db.upsert import upsert_statement
from shared.history import TurnRecord

logger = logging.getLogger(__name__)


def to_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def title_of(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


async def write_turns(sessions: async_sessionmaker[AsyncSession], records: Sequence[TurnRecord]) -> int:
    """Upsert a batch in one transaction, keyed by turn id: a record written twice (a writer that died
    before acknowledging it) leaves one row. Records of readers deleted meanwhile are dropped, so a
    deletion is not undone by a turn that was still running. Returns the rows the batch may have added."""
    async with sessions.begin() as session:
        reader_ids = {r.reader_id for r in records if r.reader_id is not None}
        existing: set[str] = set()
        if reader_ids:
            existing = set((await session.scalars(select(Reader.id).where(Reader.id.in_(reader_ids)))).all())
        kept = [r for r in records if r.reader_id is None or r.reader_id in existing]
        if len(kept) < len(records):
            logger.info("dropped %d turn records of deleted readers", len(records) - len(kept))
        if not kept:
            return 0
        await _upsert_conversations(session, kept)
        turns = [
            {
                "id": r.turn_id,
                "conversation_id": r.conversation_id,
                "reader_id": r.reader_id,
                "question": storable(r.question),
                "selected_text": storable_or_none(r.selected_text),
                "answer": storable(r.answer),
                "sources": storable_json([s.model_dump(mode="json") for s in r.sources]),
                "citations": storable_json([c.model_dump(mode="json") for c in r.citations]),
                "provider": r.provider,
                "status": str(r.status),
                "grounded": r.grounded,
                "first_delta_ms": r.first_delta_ms,
                "total_ms": r.total_ms,
                "created_at": to_datetime(r.asked_at),
                "finished_at": to_datetime(r.finished_at),
            }
            for r in kept
        ]
        insert = upsert_statement(session, Turn)
        await session.execute(insert.on_conflict_do_nothing(index_elements=[Turn.id]), turns)
        return len(turns)


async def _upsert_conversations(session: AsyncSession, records: Sequence[TurnRecord]) -> None:
    rows: dict[str, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: r.asked_at):
        row = rows.setdefault(
            r.conversation_id,
            {
                "id": r.conversation_id,
                "reader_id": r.reader_id,
                "title": title_of(storable(r.question)),
                "created_at": to_datetime(r.asked_at),
                "updated_at": to_datetime(r.finished_at),
            },
        )
        row["updated_at"] = max(row["updated_at"], to_datetime(r.finished_at))
    insert = upsert_statement(session, Conversation)
    statement = insert.on_conflict_do_update(
        index_elements=[Conversation.id],
        set_={
            "updated_at": case(
                (Conversation.updated_at < insert.excluded.updated_at, insert.excluded.updated_at),
                else_=Conversation.updated_at,
            ),
            # an anonymous conversation continued after a hello becomes that reader's; an owned one stays its owner's
            "reader_id": case(
                (Conversation.reader_id.is_(None), insert.excluded.reader_id), else_=Conversation.reader_id
            ),
        },
    )
    # sorted: one lock order for every writer, so two batches never deadlock
    await session.execute(statement, sorted(rows.values(), key=lambda row: str(row["id"])))


async def recent_exchanges(
    sessions: async_sessionmaker[AsyncSession], conversation_id: str, limit: int
) -> list[tuple[str, str]]:
    """The last ``limit`` answered (question, answer) pairs of a conversation, oldest first."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Turn.question, Turn.answer)
                .where(Turn.conversation_id == conversation_id, Turn.status == "done")
                .order_by(Turn.created_at.desc(), Turn.id.desc())
                .limit(limit)
            )
        ).all()
    return [(question, answer) for question, answer in reversed(rows)]
