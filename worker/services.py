"""What every job of the worker shares: built once in ``on_startup``, closed in ``on_shutdown``."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from shared.db.database import Database
from shared.settings import Settings
from worker.cohere.provider import CohereProvider
from worker.knowledge.book_outlines import BookOutlines
from worker.knowledge.store import KnowledgeStore
from worker.knowledge.vocabulary import BookVocabulary
from worker.turns.conversation import ConversationMemory
from worker.turns.event_sink import EventBatcher
from worker.turns.timings import TurnTimings


@dataclass(frozen=True)
class WorkerServices:
    settings: Settings
    worker_id: str
    redis: Redis
    batcher: EventBatcher  # every turn's events go out through it
    store: KnowledgeStore
    vocabulary: BookVocabulary  # how rare the book's words are: whether it covers a question (offline)
    outlines: BookOutlines  # the served documents' sections: the follow-up suggestions
    cohere: CohereProvider | None
    memory: ConversationMemory
    metrics: TurnTimings
    database: Database | None = None
