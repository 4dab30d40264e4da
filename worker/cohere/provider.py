"""Cohere through the real async SDK: query/document embeddings, rerank, and the streamed, cited answer.

Retries are done here, not by the SDK: 429s, 5xx and transport failures are retried with exponential
backoff and full jitter, but a chat stream only *before its first token* — after that a retry would
send the client a second, different beginning of the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import cohere
import httpx
from cohere.core.api_error import ApiError
from redis.asyncio import Redis

from shared.protocol import ErrorCode
from shared.rate_limit import WindowLimiter
from shared.settings import Settings
from worker.cohere.client import CohereClients
from worker.cohere.embed import MalformedEmbedResponse, embed_floats
from worker.cohere.failures import ProviderFailure
from worker.cohere.stream import stream_chat_events
from worker.knowledge.store import Passage

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


def _retry_after(exc: ApiError) -> float | None:
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        pass
    return None


def classify(exc: BaseException) -> tuple[bool, ProviderFailure]:
    """(retryable, the failure to report if retries run out)."""
    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        if status == 429:
            return True, ProviderFailure(
                ErrorCode.RATE_LIMITED,
                "the language model is rate limited; try again shortly",
                _retry_after(exc),
            )
        if status >= 500:
            return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, f"the language model failed ({status})")
        return False, ProviderFailure(ErrorCode.PROVIDER_ERROR, f"the language model refused the request ({status})")
    # The HTTP runs on aiohttp (worker.cohere.client). Its adapter maps most errors to httpx's, but some
    # loosely (a dropped keep-alive connection arrives as httpx.ConnectTimeout) and some not at all (a
    # malformed status line stays aiohttp.ClientResponseError): the aiohttp cause decides when there is one.
    cause = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        if isinstance(cause, asyncio.TimeoutError):
            return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, "the language model timed out")
        return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, "the connection to the language model failed")
    if isinstance(exc, httpx.TimeoutException):
        return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, "the language model timed out")
    if isinstance(exc, httpx.TransportError):
        return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, "the connection to the language model failed")
    raise exc


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
        # Shared by all workers: a burst of asks waits here (its clients already saw ``accepted``)
        # instead of turning into a storm of 429s from Cohere. Without Redis (tools, evaluation) no limit.
        self._limits = (
            {
                "chat": WindowLimiter(redis, "cohere-chat", settings.cohere_chat_per_minute),
                "embed": WindowLimiter(redis, "cohere-embed", settings.cohere_embed_inputs_per_minute),
                "rerank": WindowLimiter(redis, "cohere-rerank", settings.cohere_rerank_per_minute),
            }
            if redis is not None
            else {}
        )
        self._settings = settings
        self._attempts = attempts

    async def close(self) -> None:
        await self._clients.aclose()

    async def _backoff(self, attempt: int, failure: ProviderFailure) -> None:
        delay = min(4.0, 0.25 * 2**attempt)
        delay = random.uniform(0, delay)  # full jitter: many workers must not retry in lock-step
        if failure.retry_after:
            delay = max(delay, min(failure.retry_after, 10.0))
        logger.info("cohere call failed (%s); retry %d in %.2fs", failure.message, attempt + 1, delay)
        await asyncio.sleep(delay)

    async def _within_limit(self, endpoint: str, cost: int = 1) -> None:
        limiter = self._limits.get(endpoint)
        if limiter is None:
            return
        decision = await limiter.acquire("all", cost, max_wait_s=self._settings.cohere_limit_max_wait_s)
        if not decision.allowed:
            raise ProviderFailure(
                ErrorCode.RATE_LIMITED,
                "the tutor is at its language-model rate limit; please ask again shortly",
                round(decision.retry_after_s, 3),
            )

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self._attempts):
            try:
                return await make()
            except (ApiError, httpx.HTTPError, aiohttp.ClientError) as exc:
                retryable, failure = classify(exc)
                if not retryable or attempt == self._attempts - 1:
                    raise failure from exc
                await self._backoff(attempt, failure)
        raise AssertionError("unreachable")

    # --- embeddings and rerank ---------------------------------------------------------------------

    async def _embed(self, texts: Sequence[str], input_type: str) -> list[list[float]]:
        model = self._settings.cohere_embed_model
        dimension = self._settings.cohere_embed_dimension if model.startswith("embed-v4") else None  # v3: fixed
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = list(texts[start : start + EMBED_BATCH])
            await self._within_limit("embed", len(batch))
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
        await self._within_limit("rerank")
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
            await self._within_limit("chat")
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
                await self._backoff(attempt, failure)


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
