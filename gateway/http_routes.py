"""HTTP endpoints: liveness, readiness and the one-shot REST chat (the page at ``/`` is gateway/pages.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field, ValidationError

from gateway.admin_access import bearer_token, check_admin
from gateway.chat_socket import forward_turn_events, too_many_asks
from gateway.clients import client_address
from gateway.readiness import Readiness, check_readiness
from gateway.services import ServicesDep
from gateway.turns import TurnNotAccepted
from shared.protocol import (
    CONVERSATION_ID_PATTERN,
    AskFrame,
    CitationEvent,
    DoneEvent,
    ErrorCode,
    ErrorEvent,
    ReaderLevel,
    Source,
    SourcesEvent,
    describe_validation_error,
    server_event_adapter,
)

router = APIRouter()

_STATUS_FOR_ERROR = {
    ErrorCode.INVALID_FRAME: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ErrorCode.TOO_LARGE: status.HTTP_413_CONTENT_TOO_LARGE,
    ErrorCode.UNKNOWN_TURN: status.HTTP_404_NOT_FOUND,
    ErrorCode.CANCELLED: status.HTTP_409_CONFLICT,
    ErrorCode.TIMEOUT: status.HTTP_504_GATEWAY_TIMEOUT,
    ErrorCode.PROVIDER_ERROR: status.HTTP_502_BAD_GATEWAY,
    ErrorCode.RATE_LIMITED: status.HTTP_429_TOO_MANY_REQUESTS,
    ErrorCode.BUSY: status.HTTP_503_SERVICE_UNAVAILABLE,
    ErrorCode.WORKER_LOST: status.HTTP_503_SERVICE_UNAVAILABLE,
    ErrorCode.UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
    ErrorCode.INTERNAL: status.HTTP_500_INTERNAL_SERVER_ERROR,
}


class ChatRequest(BaseModel):
    question: str = Field(min_length=1, description="The reader's question.")
    conversation_id: str | None = Field(None, pattern=CONVERSATION_ID_PATTERN)
    selected_text: str | None = Field(None, description="A passage the reader highlighted; primary context.")
    language: str | None = Field(
        None, description="The reader's language (BCP 47, e.g. 'ur'); overrides the one detected from the question."
    )
    level: ReaderLevel | None = Field(None, description="The reader's level; the explanation adapts to it.")


class ChatCitation(BaseModel):
    start: int
    end: int
    text: str
    source_ids: list[str]


class ChatResponse(BaseModel):
    turn_id: str
    conversation_id: str
    answer: str
    sources: list[Source]
    citations: list[ChatCitation]
    provider: str
    grounded: bool
    suggestions: list[str]


class ApiError(BaseModel):
    code: ErrorCode
    message: str
    turn_id: str | None = None
    retry_after: float | None = None


def error_response(error: ErrorEvent) -> JSONResponse:
    body = ApiError(code=error.code, message=error.message, turn_id=error.turn_id, retry_after=error.retry_after)
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
    return JSONResponse(
        {"error": body.model_dump(mode="json")}, status_code=_STATUS_FOR_ERROR[error.code], headers=headers
    )


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the gateway process answers. Says nothing about its dependencies (see /ready)."""
    return {"status": "ok"}


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(services: ServicesDep, http: Request, response: Response) -> Readiness:
    """Each check's name and whether it passes; with the admin token, each check's details too."""
    readiness = await check_readiness(
        services.redis,
        services.settings.qdrant_collection,
        relay_failing=services.relay.failing,
        database=services.database,
    )
    if readiness.failing:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    access = await check_admin(http, services, bearer_token(http))
    return readiness if access.granted else readiness.without_details()


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: ServicesDep) -> PlainTextResponse:
    """Prometheus text format: sockets, turns, refusals, relayed events, queue depth, workers."""
    body = await services.metrics.render(services.redis, services.settings.qdrant_collection, services.sockets.total)
    return PlainTextResponse(body.decode(), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/api/chat",
    response_model=ChatResponse,
    responses={code: {"model": dict[str, ApiError]} for code in (404, 409, 413, 422, 429, 502, 503, 504)},
)
async def chat(request: ChatRequest, http: Request, services: ServicesDep) -> Any:
    """Ask one question and get the whole answer at once (the WebSocket streams the same turn)."""
    settings = services.settings
    try:
        ask = AskFrame.model_validate(
            {"type": "ask", **request.model_dump()},
            context={
                "max_question_chars": settings.max_question_chars,
                "max_selected_text_chars": settings.max_selected_text_chars,
            },
        )
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        too_long = any("longer than" in str(e.get("msg", "")) for e in errors)
        code = ErrorCode.TOO_LARGE if too_long else ErrorCode.INVALID_FRAME
        return error_response(ErrorEvent(turn_id=None, code=code, message=describe_validation_error(errors)))
    decision = await services.ask_limiter.check(client_address(http, settings.trust_proxy_headers))
    if not decision.allowed:
        services.metrics.asks_refused.labels("rate_limited").inc()
        return error_response(too_many_asks(decision.retry_after_s))
    try:
        accepted = await services.turns.start(ask)
    except TurnNotAccepted as exc:
        services.metrics.asks_refused.labels(exc.error.code.value).inc()
        return error_response(exc.error)
    services.metrics.turns_started.inc()
    frames: list[str] = []
    try:
        await forward_turn_events(services, accepted.turn_id, None, lambda frame, _terminal: frames.append(frame))
    except asyncio.CancelledError:
        # The HTTP client went away: nobody will read this answer, so stop paying for it.
        await asyncio.shield(services.turns.cancel(accepted.turn_id, "the HTTP client disconnected"))
        raise
    sources: list[Source] = []
    citations: list[ChatCitation] = []
    for frame in frames:
        event = server_event_adapter.validate_json(frame)
        if isinstance(event, SourcesEvent):
            sources = event.sources
        elif isinstance(event, CitationEvent):
            citations.append(
                ChatCitation(start=event.start, end=event.end, text=event.text, source_ids=event.source_ids)
            )
        elif isinstance(event, ErrorEvent):
            return error_response(event)
        elif isinstance(event, DoneEvent):
            return ChatResponse(
                turn_id=accepted.turn_id,
                conversation_id=accepted.conversation_id,
                answer=event.answer,
                sources=sources,
                citations=citations,
                provider=event.provider,
                grounded=event.grounded,
                suggestions=event.suggestions,
            )
    return error_response(
        ErrorEvent(turn_id=accepted.turn_id, code=ErrorCode.TIMEOUT, message="the turn did not finish")
    )
