"""The reader's REST API: create a reader, list, open and delete conversations, rate answers, forget
everything. Each call carries ``Authorization: Bearer <reader_token>`` (or a signed-in reader's id
token); another reader's conversation or turn answers 404, exactly like one that does not exist."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError

from gateway.clients import client_address
from gateway.ratings import save_rating
from gateway.reader_auth import InvalidCredentials
from gateway.services import GatewayServices, ServicesDep
from shared.db.conversations import delete_conversation, get_conversation, list_conversations
from shared.db.readers import delete_reader
from shared.protocol import (
    CONVERSATION_ID_PATTERN,
    MAX_COMMENT_CHARS,
    TURN_ID_PATTERN,
    FeedbackFields,
    Source,
    describe_validation_error,
)

router = APIRouter(prefix="/api", tags=["history"])
_bearer = HTTPBearer(auto_error=False, description="reader_token from POST /api/readers, or a sign-in id token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class ReaderCreated(BaseModel):
    reader_token: str


class ConversationItem(BaseModel):
    id: str
    title: str
    updated_at: datetime
    turns: int


class ConversationList(BaseModel):
    conversations: list[ConversationItem]
    next: str | None


class FeedbackView(BaseModel):
    rating: str
    reason: str | None
    comment: str | None


class CitationView(BaseModel):
    start: int
    end: int
    text: str
    source_ids: list[str]


class TurnView(BaseModel):
    turn_id: str
    question: str
    selected_text: str | None
    answer: str
    sources: list[Source]
    citations: list[CitationView]
    provider: str
    status: str
    created_at: datetime
    feedback: FeedbackView | None


class ConversationView(BaseModel):
    id: str
    title: str
    turns: list[TurnView]


class FeedbackBody(BaseModel):
    """Checked in full by ``FeedbackFields`` (so that a refusal never echoes what was sent)."""

    rating: str = Field(description="`up` or `down`")
    reason: str | None = Field(None, description="`wrong`, `not_in_book`, `unclear` or `other`")
    comment: str | None = Field(None, description=f"At most {MAX_COMMENT_CHARS} characters")


class FeedbackSaved(BaseModel):
    turn_id: str
    rating: str
    reason: str | None
    comment: str | None


def api_error(status_code: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status_code == status.HTTP_401_UNAUTHORIZED else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code, headers=headers)


def not_found(what: str) -> JSONResponse:
    return api_error(status.HTTP_404_NOT_FOUND, "not_found", f"no such {what}")


async def _reader(services: GatewayServices, credentials: HTTPAuthorizationCredentials | None) -> str | JSONResponse:
    if credentials is None:
        return api_error(status.HTTP_401_UNAUTHORIZED, "unauthorized", "a reader token is required")
    try:
        return await services.readers.by_token(credentials.credentials)
    except InvalidCredentials:
        return api_error(status.HTTP_401_UNAUTHORIZED, "unauthorized", "the reader token is not valid")


def encode_cursor(after: tuple[datetime, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([after[0].isoformat(), after[1]])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    try:
        at, conversation_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if when.tzinfo is None or not isinstance(conversation_id, str):
        return None
    return when, conversation_id


ConversationId = Annotated[str, Path(pattern=CONVERSATION_ID_PATTERN)]
TurnId = Annotated[str, Path(pattern=TURN_ID_PATTERN)]
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "No reader token, or not a valid one"},
    429: {"description": "Too many new readers from one address"},
    503: {"description": "The database is unavailable"},
}


@router.post("/readers", status_code=status.HTTP_201_CREATED, response_model=ReaderCreated, responses=_AUTH)
async def create_reader(services: ServicesDep, http: Request) -> Any:
    """A new reader: keep the token (it is shown once) and send it as ``Authorization: Bearer``."""
    # a write to the database per call: limited per client like asks
    decision = await services.ask_limiter.check(client_address(http, services.settings.trust_proxy_headers))
    if not decision.allowed:
        return JSONResponse(
            {"error": {"code": "rate_limited", "message": "too many new readers from your address; wait a moment"}},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(max(1, round(decision.retry_after_s)))},
        )
    created = await services.readers.create()
    return ReaderCreated(reader_token=created.reader_token)


@router.delete("/readers/me", status_code=status.HTTP_204_NO_CONTENT, response_model=None, responses=_AUTH)
async def forget_reader(services: ServicesDep, credentials: Credentials) -> Any:
    """Delete the reader and everything of theirs: conversations, turns, ratings, and the conversations'
    memory in Redis."""
    reader = await _reader(services, credentials)
    if isinstance(reader, JSONResponse):
        return reader
    for conversation_id in await delete_reader(await services.database.ready_sessions(), reader):
        await services.owners.forget(conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/conversations",
    response_model=ConversationList,
    responses={**_AUTH, 422: {"description": "A cursor that is not one of ours"}},
)
async def conversations(
    services: ServicesDep,
    credentials: Credentials,
    cursor: Annotated[str | None, Query(max_length=512, description="`next` of the previous page")] = None,
) -> Any:
    """The reader's conversations, most recently updated first, a page at a time."""
    reader = await _reader(services, credentials)
    if isinstance(reader, JSONResponse):
        return reader
    after = None
    if cursor:
        after = decode_cursor(cursor)
        if after is None:
            return api_error(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request", "the cursor is not valid")
    page = await list_conversations(await services.database.ready_sessions(), reader, after)
    return ConversationList(
        conversations=[
            ConversationItem(id=c.id, title=c.title, updated_at=c.updated_at, turns=c.turns) for c in page.conversations
        ],
        next=encode_cursor(page.next) if page.next else None,
    )


@router.get("/conversations/{conversation_id}", response_model=ConversationView, responses={**_AUTH, 404: {}})
async def conversation(conversation_id: ConversationId, services: ServicesDep, credentials: Credentials) -> Any:
    """One conversation with every turn as it was answered (sources, citations, rating)."""
    reader = await _reader(services, credentials)
    if isinstance(reader, JSONResponse):
        return reader
    found = await get_conversation(await services.database.ready_sessions(), reader, conversation_id)
    if found is None:
        return not_found("conversation")
    return ConversationView.model_validate(found)


@router.delete(
    "/conversations/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_model=None,
    responses={**_AUTH, 404: {}},
)
async def forget_conversation(conversation_id: ConversationId, services: ServicesDep, credentials: Credentials) -> Any:
    reader = await _reader(services, credentials)
    if isinstance(reader, JSONResponse):
        return reader
    # one whose turns are not written yet (still running, or waiting in Redis for the database) is the
    # reader's when Redis says so: it is deleted all the same, and its records are dropped when they come
    owned = await services.owners.owned_by(conversation_id, reader)
    sessions = await services.database.ready_sessions()
    if not await delete_conversation(sessions, reader, conversation_id, unwritten_ours=owned):
        return not_found("conversation")
    await services.owners.forget(conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/turns/{turn_id}/feedback",
    response_model=FeedbackSaved,
    responses={**_AUTH, 404: {}, 413: {}, 422: {}},
)
async def rate_turn(turn_id: TurnId, body: FeedbackBody, services: ServicesDep, credentials: Credentials) -> Any:
    """Rate one of the reader's finished answers up or down, with an optional reason and comment; rating
    again replaces the earlier rating."""
    reader = await _reader(services, credentials)
    if isinstance(reader, JSONResponse):
        return reader
    try:
        fields = FeedbackFields.model_validate(body.model_dump(exclude_unset=True))
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if any("longer than" in str(e.get("msg", "")) for e in errors):
            return api_error(status.HTTP_413_CONTENT_TOO_LARGE, "too_large", describe_validation_error(errors))
        return api_error(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_frame", describe_validation_error(errors))
    if not await save_rating(services, reader, turn_id, fields):
        return not_found("finished turn")
    return FeedbackSaved(turn_id=turn_id, rating=fields.rating, reason=fields.reason, comment=fields.comment)
