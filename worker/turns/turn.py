"""The ``run_turn`` job: retrieve, generate, and stream one answer's events to the turn's stream."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from arq import Retry
from redis.exceptions import RedisError

from shared import keys
from shared.jobs import TurnJob
from shared.protocol import (
    CitationEvent,
    DoneEvent,
    ErrorCode,
    ErrorEvent,
    Source,
    SourcesEvent,
)
from shared.second_try import EarlierTry, earlier_try
from shared.small_talk import small_talk_kind
from shared.turn_events import TurnHandedOn, TurnStreamLost
from shared.worker_turns import list_turn
from worker.cohere.failures import ProviderFailure
from worker.cohere.provider import ChatDocument, ChatTurn, CitationPiece, TextPiece
from worker.knowledge.documents import Passage
from worker.knowledge.qdrant_errors import KnowledgeStoreError
from worker.services import WorkerServices
from worker.turns.book_scope import offline_covers, rerank_covers
from worker.turns.event_sink import TurnEnded, TurnEventSink
from worker.turns.follow_ups import retrieval_query
from worker.turns.offline_answer import OfflinePassage, compose
from worker.turns.reader_language import ReaderLanguage, reader_language
from worker.turns.records import record_turn
from worker.turns.suggestions import follow_up_questions
from worker.turns.system_prompt import system_prompt

logger = logging.getLogger(__name__)

SELECTION_ID = "selection"
SNIPPET_CHARS = 320
NEAREST_CHAPTERS = 3
# How long a try's owner token outlives the turn's timeout (the timeout's own error still needs it).
OWNER_MARGIN_S = 60


def to_source(source_id: str, passage: Passage) -> Source:
    snippet = " ".join(passage.text.split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return Source(
        id=source_id,
        doc=passage.doc,
        title=passage.title,
        heading=passage.heading,
        url=passage.url,
        snippet=snippet,
        score=round(passage.score, 6),
    )


def selection_source(selected: str) -> Source:
    snippet = " ".join(selected.split())[:SNIPPET_CHARS]
    return Source(id=SELECTION_ID, doc="", title="Selected passage", heading="", url="", snippet=snippet, score=1.0)


def nearest_chapters(passages: list[Passage]) -> list[Source]:
    """For a question the book does not cover: the closest passage of each of the closest documents."""
    seen: set[str] = set()
    nearest: list[Source] = []
    for passage in passages:
        if passage.doc not in seen and len(nearest) < NEAREST_CHAPTERS:
            seen.add(passage.doc)
            nearest.append(to_source(f"s{len(nearest) + 1}", passage))
    return nearest


async def retrieve(services: WorkerServices, job: TurnJob, history: list[ChatTurn]) -> list[Passage]:
    settings = services.settings
    earlier = [t.text for t in history if t.role == "user"]
    # A follow-up ("and how is it tested?") names its subject only in the turn before, and a question
    # about a selection is about the selection's words: retrieval sees both.
    query = retrieval_query(job.question, earlier, job.selected_text)
    if services.cohere is None:
        return await services.store.search(query, None, settings.retrieval_top_k)
    vector = await services.cohere.embed_query(query)
    candidates = await services.store.search(query, vector, settings.retrieval_candidates)
    return await services.cohere.rerank(
        retrieval_query(job.question, earlier, None), candidates, settings.retrieval_top_k
    )


async def covered_by_book(
    services: WorkerServices, job: TurnJob, history: list[ChatTurn], passages: list[Passage]
) -> bool:
    """Whether what was retrieved answers the question (worker/turns/book_scope.py); a selection always does.
    A follow-up is judged with the question it follows up, as it was retrieved."""
    if job.selected_text:
        return True
    settings = services.settings
    if services.cohere is not None:
        return rerank_covers(passages, settings.rerank_min_relevance)
    asked = retrieval_query(job.question, [t.text for t in history if t.role == "user"], None)
    rarity = await services.vocabulary.rarity()
    return offline_covers(asked, passages, rarity, settings.offline_min_coverage)


async def _pieces(
    services: WorkerServices,
    job: TurnJob,
    history: list[ChatTurn],
    passages: list[Passage],
    source_ids: list[str],
    language: ReaderLanguage,
) -> AsyncIterator[TextPiece | CitationPiece]:
    if services.cohere is None:
        offline = [
            OfflinePassage(sid, p.text, f"{p.title} > {p.heading}") for sid, p in zip(source_ids, passages, strict=True)
        ]
        if job.selected_text:
            offline.insert(0, OfflinePassage(SELECTION_ID, job.selected_text))
        for piece in compose(job.question, offline, note=language.english_note()):
            yield piece
        return
    documents = [
        ChatDocument(sid, f"{p.title} — {p.heading}", p.text, p.url)
        for sid, p in zip(source_ids, passages, strict=True)
    ]
    if job.selected_text:
        documents.insert(0, ChatDocument(SELECTION_ID, "Passage the reader selected", job.selected_text, ""))
    system = system_prompt(language, job.level, selection=bool(job.selected_text))
    async for piece in services.cohere.stream_answer(system, history, job.question, documents):
        yield piece


async def _say(
    services: WorkerServices,
    job: TurnJob,
    sink: TurnEventSink,
    sources: list[Source],
    text: str,
    earlier: EarlierTry | None,
) -> None:
    """A fixed reply (small talk, "not in the book"): sent word by word like an answer, never cited."""
    if earlier is None or not earlier.sent_sources:
        await sink.emit(SourcesEvent(turn_id=job.turn_id, sources=sources))
    for word in re.finditer(r"\s*\S+", text):
        sink.delta(word.group(0))
    await sink.drain()
    await services.memory.remember(job.conversation_id, job.question, sink.answer)
    await sink.emit(
        DoneEvent(turn_id=job.turn_id, answer=sink.answer, provider=services.settings.provider, grounded=False)
    )


async def answer_turn(
    services: WorkerServices, job: TurnJob, sink: TurnEventSink, earlier: EarlierTry | None = None
) -> None:
    """``earlier``: what a first try on a worker that died already sent, when this is the second try."""
    language = reader_language(job.question, job.language)
    talk = None if job.selected_text else small_talk_kind(job.question)
    if talk is not None:
        await _say(services, job, sink, [], language.line(talk), earlier)
        return
    history = await services.memory.history(job.conversation_id, new=job.new_conversation)
    passages = await retrieve(services, job, history)
    if not await covered_by_book(services, job, history, passages):
        nearest = nearest_chapters(passages)
        reply = language.line("not_in_book")
        if nearest and (language.base or "en") == "en":
            reply += " The sources listed are the nearest chapters it has."
        await _say(services, job, sink, nearest, reply, earlier)
        return
    source_ids = [f"s{i + 1}" for i in range(len(passages))]
    sources = [to_source(sid, p) for sid, p in zip(source_ids, passages, strict=True)]
    if job.selected_text:
        sources.insert(0, selection_source(job.selected_text))
    if earlier is None or not earlier.sent_sources:
        await sink.emit(SourcesEvent(turn_id=job.turn_id, sources=sources))
    offline = services.cohere is None
    cited: list[str] = []
    async for piece in _pieces(services, job, history, passages, source_ids, language):
        if isinstance(piece, TextPiece):
            sink.delta(piece.text)
            if offline:
                # The offline answer exists all at once; send it word by word like a model would, one
                # Redis write per word, rather than as one coalesced block.
                await sink.drain()
        else:
            cited += [sid for sid in piece.source_ids if sid not in cited]
            await sink.emit(
                CitationEvent(
                    turn_id=job.turn_id,
                    start=piece.start,
                    end=piece.end,
                    text=piece.text,
                    source_ids=piece.source_ids,
                )
            )
    await sink.drain()
    answer = sink.answer
    # A model's answer that cites nothing is not drawn from the book (it said the book lacks it).
    grounded = offline or bool(cited)
    suggestions = await _suggestions(services, job, passages, source_ids, cited) if grounded else []
    # Remember before announcing ``done``: a follow-up asked the instant ``done`` arrives must see it.
    await services.memory.remember(job.conversation_id, job.question, answer)
    await sink.emit(
        DoneEvent(
            turn_id=job.turn_id,
            answer=answer,
            provider=services.settings.provider,
            grounded=grounded,
            suggestions=suggestions,
        )
    )


async def _suggestions(
    services: WorkerServices, job: TurnJob, passages: list[Passage], source_ids: list[str], cited: list[str]
) -> list[str]:
    by_id = dict(zip(source_ids, passages, strict=True))
    drew_on = [(by_id[sid].doc, by_id[sid].heading) for sid in cited if sid in by_id] or [
        (p.doc, p.heading) for p in passages[:2]
    ]
    try:
        return await follow_up_questions(job.question, drew_on, services.outlines.outline)
    except KnowledgeStoreError as exc:  # suggestions are a courtesy: the answer stands without them
        logger.warning("turn %s: no suggestions (%s)", job.turn_id, exc)
        return []


async def _end_with(sink: TurnEventSink, code: ErrorCode, message: str, retry_after: float | None = None) -> None:
    try:
        await sink.fail(ErrorEvent(turn_id=sink.turn_id, code=code, message=message, retry_after=retry_after))
    except (TurnStreamLost, TurnHandedOn):
        pass  # Redis lost the turn (the gateway ends it for the client), or another worker answers it
    except Exception:
        logger.exception("could not record the end of turn %s", sink.turn_id)


async def run_turn(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """arq job: answer one turn. Whatever happens, the turn's stream ends with one ``done`` or ``error``
    (the append script refuses a second terminal event, so a racing cancel cannot produce two)."""
    services: WorkerServices = ctx["services"]
    job = TurnJob.model_validate(payload)
    started = time.time()
    services.metrics.observe_hop(started - job.enqueued_at)
    # This try's token: the turn's events accept its writes only while the turn is its (shared/turn_events.py).
    owner = uuid.uuid4().hex
    sink = services.batcher.sink(job.turn_id, owner)
    await _register(services, job.turn_id, owner)
    earlier: EarlierTry | None = None
    if ctx.get("job_try", 1) > 1:
        # arq's second try: its first worker died (shared/second_try.py)
        earlier = await earlier_try(services.redis, job.turn_id)
        if earlier.sent_answer:
            await _end_with(sink, ErrorCode.WORKER_LOST, "the worker answering this question stopped; please ask again")
            await asyncio.shield(record_turn(services.redis, services.settings, job, sink, second_try=True))
            await _unregister(services, job.turn_id)
            return
        logger.info("turn %s: second try, its first worker died before answering", job.turn_id)
    try:
        async with asyncio.timeout(services.settings.turn_timeout_s):
            await answer_turn(services, job, sink, earlier)
    except TurnEnded:
        logger.info("turn %s ended elsewhere; stopped generating", job.turn_id)
    except TurnHandedOn:
        pass  # below, whichever write learnt it (an error this try meant to end the turn with is refused too)
    except asyncio.CancelledError:
        # Cancelled by a client (the gateway already wrote ``cancelled``, so this is refused) or by a
        # shutdown that outlasted SHUTDOWN_GRACE_S: then the client learns why.
        await asyncio.shield(
            _end_with(sink, ErrorCode.UNAVAILABLE, "the service restarted while answering; please ask again")
        )
        raise
    except TimeoutError:
        await _end_with(sink, ErrorCode.TIMEOUT, "the answer took too long")
    except TurnStreamLost:
        logger.warning("turn %s: its event stream is gone (Redis restarted); stopped generating", job.turn_id)
    except (RedisError, OSError) as exc:
        logger.warning("turn %s: lost Redis (%s)", job.turn_id, type(exc).__name__)
        await _end_with(sink, ErrorCode.UNAVAILABLE, "the service restarted while answering; please ask again")
    except ProviderFailure as failure:
        logger.warning("turn %s: provider failure: %s", job.turn_id, failure.message)
        await _end_with(sink, failure.code, failure.message, failure.retry_after)
    except Exception:
        logger.exception("turn %s failed", job.turn_id)
        await _end_with(sink, ErrorCode.INTERNAL, "something went wrong while answering; please try again")
    finally:
        services.metrics.observe_turn(time.time() - started)
        if not sink.handed_on:  # the try that answers the turn records it
            await asyncio.shield(
                record_turn(services.redis, services.settings, job, sink, second_try=earlier is not None)
            )
        await asyncio.shield(_unregister(services, job.turn_id))
    if sink.handed_on:
        # Stalled past its heartbeat's TTL (not dead): the reaper gave the turn to another worker, which answers
        # it; nothing of this try went out after that, and it leaves no error and no record behind. Ending the
        # job would take it off arq's queue, perhaps before the second try started: arq's Retry leaves it there.
        logger.warning("turn %s was handed to another worker; this one stops", job.turn_id)
        raise Retry


async def _register(services: WorkerServices, turn_id: str, owner: str) -> None:
    """Make the turn this try's (``owner``), and list it under this worker, so that if the worker dies the
    gateway's reaper can hand it on or end it. The owner token outlives the turn's own timeout."""
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.turn_owner(turn_id), owner, ex=int(services.settings.turn_timeout_s) + OWNER_MARGIN_S)
        list_turn(pipe, services.worker_id, turn_id)
        await pipe.execute()


async def _unregister(services: WorkerServices, turn_id: str) -> None:
    try:
        await services.redis.srem(keys.worker_turns(services.worker_id), turn_id)  # type: ignore[misc]
    except Exception as exc:  # Redis down: the set goes with it, or the reaper cleans up after us
        logger.debug("could not unregister turn %s: %s", turn_id, type(exc).__name__)
