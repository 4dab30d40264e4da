"""Writing finished turns, and reading a conversation's last exchanges back for the model's memory."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import case, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import TITLE_CHARS, Conversation, DeletedConversation, JoinedReader, Reader, Turn
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
    before acknowledging it) leaves one row, the first. Records of readers or conversations deleted
    meanwhile are dropped, so a deletion is not undone by a turn that was still running. Returns the rows
    the batch may have added."""
    async with sessions.begin() as session:
        reader_ids = {r.reader_id for r in records if r.reader_id is not None}
        existing: set[str] = set()
        if reader_ids:
            existing = set((await session.scalars(select(Reader.id).where(Reader.id.in_(reader_ids)))).all())
        if reader_ids - existing:
            # anonymous readers that joined an account since their turn started: their records follow them
            joined = dict(
                (
                    await session.execute(
                        select(JoinedReader.id, JoinedReader.reader_id).where(
                            JoinedReader.id.in_(reader_ids - existing)
                        )
                    )
                ).all()
            )
            records = [
                r.model_copy(update={"reader_id": joined[r.reader_id]}) if r.reader_id in joined else r for r in records
            ]
            existing |= set(joined.values())
        kept = [r for r in records if r.reader_id is None or r.reader_id in existing]
        if len(kept) < len(records):
            logger.info("dropped %d turn records of deleted readers", len(records) - len(kept))
        if not kept:
            return 0
        await _upsert_conversations(session, kept)
        # Read after the upsert, which holds the conversations' rows until this transaction ends: a deletion
        # that committed before it is seen here (and what the upsert brought back goes again), one that
        # comes later waits for this transaction and deletes what it wrote.
        deleted = set(
            (
                await session.scalars(
                    select(DeletedConversation.id).where(DeletedConversation.id.in_({r.conversation_id for r in kept}))
                )
            ).all()
        )
        if deleted:
            await session.execute(delete(Conversation).where(Conversation.id.in_(deleted)))
            kept = [r for r in kept if r.conversation_id not in deleted]
            logger.info("dropped the turn records of %d deleted conversations", len(deleted))
            if not kept:
                return 0
        turns = [_turn_row(r) for r in kept]
        if session.get_bind().dialect.name == "postgresql":
            # the whole batch as one JSON parameter of one statement: an executemany costs Postgres a
            # statement per row, and this is most of the writer's time (bench/history.py)
            rows = [
                {**t, "created_at": t["created_at"].isoformat(), "finished_at": t["finished_at"].isoformat()}
                for t in turns
            ]
            await session.execute(_INSERT_TURNS_FROM_JSON, {"rows": orjson.dumps(rows).decode()})
        else:
            insert = upsert_statement(session, Turn)
            await session.execute(insert.on_conflict_do_nothing(index_elements=[Turn.id]), turns)
        return len(turns)


_INSERT_TURNS_FROM_JSON = text(
    """
    INSERT INTO turns (id, conversation_id, reader_id, question, selected_text, answer, sources, citations,
                       provider, status, grounded, first_delta_ms, total_ms, created_at, finished_at)
    SELECT id, conversation_id, reader_id, question, selected_text, answer, sources, citations,
           provider, status, grounded, first_delta_ms, total_ms, created_at, finished_at
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        id varchar, conversation_id varchar, reader_id varchar, question text, selected_text text, answer text,
        sources jsonb, citations jsonb, provider varchar, status varchar, grounded boolean,
        first_delta_ms float8, total_ms float8,
        created_at timestamptz, finished_at timestamptz)
    ON CONFLICT (id) DO NOTHING
    """
)


def _turn_row(record: TurnRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json")  # in one call: far cheaper than dumping each source on its own
    return {
        "id": record.turn_id,
        "conversation_id": record.conversation_id,
        "reader_id": record.reader_id,
        "question": storable(record.question),
        "selected_text": storable_or_none(record.selected_text),
        "answer": storable(record.answer),
        "sources": [storable_json(source) for source in data["sources"]],
        "citations": [storable_json(citation) for citation in data["citations"]],
        "provider": record.provider,
        "status": str(record.status),
        "grounded": record.grounded,
        "first_delta_ms": record.first_delta_ms,
        "total_ms": record.total_ms,
        "created_at": to_datetime(record.asked_at),
        "finished_at": to_datetime(record.finished_at),
    }


_UPSERT_CONVERSATIONS_FROM_JSON = text(
    """
    INSERT INTO conversations (id, reader_id, title, created_at, updated_at)
    SELECT id, reader_id, title, created_at, updated_at
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS r(id varchar, reader_id varchar, title varchar, created_at timestamptz, updated_at timestamptz)
    ORDER BY id
    ON CONFLICT (id) DO UPDATE SET
        updated_at = GREATEST(conversations.updated_at, excluded.updated_at),
        reader_id = COALESCE(conversations.reader_id, excluded.reader_id)
    """
)


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
    ordered = sorted(rows.values(), key=lambda row: str(row["id"]))  # one lock order: batches never deadlock
    if session.get_bind().dialect.name == "postgresql":
        as_json = [
            {**row, "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}
            for row in ordered
        ]
        await session.execute(_UPSERT_CONVERSATIONS_FROM_JSON, {"rows": orjson.dumps(as_json).decode()})
        return
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
    await session.execute(statement, ordered)


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
