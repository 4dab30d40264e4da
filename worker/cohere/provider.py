"""Cohere through the real async SDK: query/document embeddings, rerank, and the streamed, cited answer.

Retries are ours, not the SDK's (``worker/cohere/retries.py``); a chat stream is retried only *before its
first token*: after that a retry would send the client a second, different beginning of the answer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import cohere
import httpx
from cohere.core.api_error import ApiError
from redis.asyncio import Redis

from shared.protocol import ErrorCode
from shared.settings import Settings
from worker.cohere.client import CohereClients
from worker.cohere.embed import MalformedEmbedResponse, embed_floats
from worker.cohere.failures import ProviderFailure
from worker.cohere.limits import CohereLimits
from worker.cohere.retries import backoff, classify
from worker.cohere.stream import stream_chat_events
from worker.knowledge.documents import Passage

logger = logging.getLogger(__name__)

T = TypeVar("T")
EMBED_BATCH = 96  # the Embed API's limit of texts per call


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class CitationPiece:
    start: int
    end: int
    text: str
    source_ids: list[str]


@dataclass(frozen=True)
class ChatDocument:
    id: str
    title: str
    text: str
    url: str


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "user" | "assistant"
    text: str


class CohereProvider:
    def __init__(
        self,
        clients: CohereClients,
        settings: Settings,
        redis: Redis | None = None,
        *,
        attempts: int = 3,
    ) -> None:
        self._clients = clients
        self._client = clients.api
        self._limits = CohereLimits(redis, settings)
        self._settings = settings
        self._attempts = attempts

    async def close(self) -> None:
        await self._clients.aclose()

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self._attempts):
            try:
                return await make()
            except (ApiError, httpx.HTTPError, aiohttp.ClientError) as exc:
                retryable, failure = classify(exc)
                if not retryable or attempt == self._attempts - 1:
                    raise failure from exc
                await backoff(attempt, failure)
        raise AssertionError("unreachable")

    # --- embeddings and rerank ---------------------------------------------------------------------

    async def _embed(self, texts: Sequence[str], input_type: str) -> list[list[float]]:
        model = self._settings.cohere_embed_model
        dimension = self._settings.cohere_embed_dimension if model.startswith("embed-v4") else None  # v3: fixed
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = list(texts[start : start + EMBED_BATCH])
            await self._limits.wait("embed", len(batch))
            try:
                vectors.extend(
                    await self._call(
                        lambda batch=batch: embed_floats(  # type: ignore[misc]
                            self._client, texts=batch, model=model, input_type=input_type, output_dimension=dimension
                        )
                    )
                )
            except MalformedEmbedResponse as exc:
                raise ProviderFailure(ErrorCode.PROVIDER_ERROR, "the embedding service returned no vectors") from exc
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        return (await self._embed([text], "search_query"))[0]

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self._embed(texts, "search_document")

    async def rerank(self, query: str, passages: list[Passage], top_n: int) -> list[Passage]:
        if not passages:
            return []
        await self._limits.wait("rerank")
        response = await self._call(
            lambda: self._client.rerank(
                model=self._settings.cohere_rerank_model,
                query=query,
                documents=[f"{p.title} — {p.heading}\n{p.text}" for p in passages],
                top_n=min(top_n, len(passages)),
            )
        )
        return [dataclasses.replace(passages[r.index], score=float(r.relevance_score)) for r in response.results]

    # --- the answer --------------------------------------------------------------------------------

    async def stream_answer(
        self, system: str, history: Sequence[ChatTurn], question: str, documents: Sequence[ChatDocument]
    ) -> AsyncIterator[TextPiece | CitationPiece]:
        messages: list[cohere.ChatMessageV2] = [cohere.SystemChatMessageV2(content=system)]
        for turn in history:
            if turn.role == "user":
                messages.append(cohere.UserChatMessageV2(content=turn.text))
            else:
                messages.append(cohere.AssistantChatMessageV2(content=turn.text))
        messages.append(cohere.UserChatMessageV2(content=question))
        docs = [cohere.Document(id=d.id, data={"title": d.title, "snippet": d.text, "url": d.url}) for d in documents]
        known_ids = {d.id for d in documents}
        for attempt in range(self._attempts):
            produced = False
            finished = False
            await self._limits.wait("chat")
            try:
                # The SDK's raw response, decoded by us: see worker/cohere/stream.py (CPU per token).
                events = stream_chat_events(
                    self._clients.streams,
                    model=self._settings.cohere_chat_model,
                    messages=messages,
                    documents=docs,
                )
                async for event in events:
                    kind = event.get("type")
                    if kind == "content-delta":
                        text = _content_text(event)
                        if text:
                            produced = True
                            yield TextPiece(text)
                    elif kind == "citation-start":
                        piece = _citation_piece(event, known_ids)
                        if piece is not None:
                            yield piece
                    elif kind == "message-end":
                        finished = True
                if not finished:
                    raise httpx.RemoteProtocolError("the answer stream ended before message-end")
                return
            except (ApiError, httpx.HTTPError, aiohttp.ClientError) as exc:
                retryable, failure = classify(exc)
                if produced:
                    raise ProviderFailure(
                        ErrorCode.PROVIDER_ERROR, "the answer stream broke off; please ask again"
                    ) from exc
                if not retryable or attempt == self._attempts - 1:
                    raise failure from exc
                await backoff(attempt, failure)


def _field(value: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _content_text(event: dict[str, Any]) -> str | None:
    text = _field(event, "delta", "message", "content", "text")
    return text if isinstance(text, str) else None


def _citation_piece(event: dict[str, Any], known_ids: set[str]) -> CitationPiece | None:
    citation = _field(event, "delta", "message", "citations")
    if not isinstance(citation, dict):
        return None
    start, end = citation.get("start"), citation.get("end")
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    sources = citation.get("sources") or []
    source_ids = [s["id"] for s in sources if isinstance(s, dict) and s.get("id") in known_ids]
    return CitationPiece(start, end, str(citation.get("text") or ""), source_ids)
