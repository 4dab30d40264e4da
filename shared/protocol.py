"""Wire protocol v1: the frames a client sends and the events of a turn.

Every model has a ``type`` literal and belongs to a discriminated union with one ``TypeAdapter``, built
once at import. Server events are written by the worker (and, for ``accepted`` and some errors, by the
gateway) into the turn's Redis stream *without* their ``id``: the id is the stream entry id, known only
once Redis has stored the event, and the gateway adds it when relaying.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import langcodes
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

# Ids the service generates are 32 hex characters; anything else a client sends is refused before it
# can reach a Redis key name.
TURN_ID_PATTERN = r"^[0-9a-f]{32}$"
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
EVENT_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
# A Redis stream id is two unsigned 64-bit integers: twenty digits can say more than that, and an id out of
# range makes Redis refuse the whole read it is part of (the relay's one XREAD serves every socket).
STREAM_ID_PART_MAX = 2**64 - 1
MAX_ERROR_MESSAGE_CHARS = 200
# The shape of a BCP 47 tag ("ur", "en-GB", "zh-Hant-TW"); langcodes then checks that its parts exist.
LANGUAGE_TAG_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,6}$"

ReaderLevel = Literal["beginner", "intermediate", "advanced"]


class ErrorCode(enum.StrEnum):
    INVALID_FRAME = "invalid_frame"  # not JSON, binary, unknown type, missing or wrong field
    TOO_LARGE = "too_large"  # frame or field over its limit
    UNKNOWN_TURN = "unknown_turn"  # resume/cancel of a turn that does not exist (or expired)
    CANCELLED = "cancelled"  # the client cancelled, or left and did not come back
    TIMEOUT = "timeout"  # the turn ran past TURN_TIMEOUT_S
    PROVIDER_ERROR = "provider_error"  # Cohere failed after retries
    RATE_LIMITED = "rate_limited"  # too many requests; see retry_after
    BUSY = "busy"  # the queue is full; see retry_after
    WORKER_LOST = "worker_lost"  # the worker running the turn died
    UNAVAILABLE = "unavailable"  # Redis or the knowledge base cannot be reached
    INTERNAL = "internal"  # a bug: logged with details server-side, never sent
    UNAUTHORIZED = "unauthorized"  # a reader token or id token that is not valid (or none where one is needed)
    NOT_FOUND = "not_found"  # no such conversation or turn among the reader's own


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _limit(info: ValidationInfo, name: str) -> int | None:
    context = info.context or {}
    limit = context.get(name)
    return int(limit) if limit is not None else None


class AskFrame(_Frame):
    type: Literal["ask"]
    question: Annotated[str, Field(min_length=1)]
    conversation_id: Annotated[str | None, Field(pattern=CONVERSATION_ID_PATTERN)] = None
    selected_text: str | None = None
    language: Annotated[str | None, Field(pattern=LANGUAGE_TAG_PATTERN, max_length=35)] = None
    """The reader's language as a BCP 47 tag; overrides the language detected from the question."""
    level: ReaderLevel | None = None
    """How much the reader knows already; the Cohere path adapts its explanation to it."""

    @field_validator("language")
    @classmethod
    def _language_is_bcp47(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not langcodes.tag_is_valid(value):
            raise ValueError("language is not a valid BCP 47 tag")
        return str(langcodes.standardize_tag(value))

    @field_validator("question")
    @classmethod
    def _question_fits(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value:
            raise ValueError("question is empty")
        limit = _limit(info, "max_question_chars")
        if limit is not None and len(value) > limit:
            raise ValueError(f"question is longer than {limit} characters")
        return value

    @field_validator("selected_text")
    @classmethod
    def _selection_fits(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        limit = _limit(info, "max_selected_text_chars")
        if limit is not None and len(value) > limit:
            raise ValueError(f"selected_text is longer than {limit} characters")
        return value.strip()


class CancelFrame(_Frame):
    type: Literal["cancel"]
    turn_id: Annotated[str, Field(pattern=TURN_ID_PATTERN)]


class ResumeFrame(_Frame):
    type: Literal["resume"]
    turn_id: Annotated[str, Field(pattern=TURN_ID_PATTERN)]
    after: Annotated[str | None, Field(pattern=EVENT_ID_PATTERN)] = None

    @field_validator("after")
    @classmethod
    def _after_is_a_stream_id(cls, value: str | None) -> str | None:
        if value is not None and any(int(part) > STREAM_ID_PART_MAX for part in value.split("-")):
            raise ValueError("after is not an event id: each part must fit in 64 bits")
        return value


class HelloFrame(_Frame):
    """Who is asking: a reader token from ``POST /api/readers`` (or an earlier ``welcome``), a signed-in
    reader's id token, or neither (a new reader is created)."""

    type: Literal["hello"]
    reader_token: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    id_token: Annotated[str | None, Field(min_length=1, max_length=16_384)] = None


MAX_COMMENT_CHARS = 2000


class FeedbackFields(BaseModel):
    """A reader's rating of an answer (the socket's ``feedback`` frame and ``PUT /api/turns/{id}/feedback``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rating: Literal["up", "down"]
    reason: Literal["wrong", "not_in_book", "unclear", "other"] | None = None
    comment: str | None = Field(None, description=f"At most {MAX_COMMENT_CHARS} characters.")

    @field_validator("comment")
    @classmethod
    def _comment_fits(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if len(value.strip()) > MAX_COMMENT_CHARS:
            raise ValueError(f"comment is longer than {MAX_COMMENT_CHARS} characters")
        return value.strip()


class FeedbackFrame(FeedbackFields, _Frame):
    type: Literal["feedback"]
    turn_id: Annotated[str, Field(pattern=TURN_ID_PATTERN)]


ClientFrame = Annotated[AskFrame | CancelFrame | ResumeFrame | HelloFrame | FeedbackFrame, Field(discriminator="type")]
client_frame_adapter: TypeAdapter[AskFrame | CancelFrame | ResumeFrame | HelloFrame | FeedbackFrame] = TypeAdapter(
    ClientFrame
)


# --- server events -------------------------------------------------------------------------------


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = None
    turn_id: str | None


class Source(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    doc: str
    title: str
    heading: str
    url: str
    snippet: str
    score: float


class AcceptedEvent(_Event):
    type: Literal["accepted"] = "accepted"
    turn_id: str
    conversation_id: str


class SourcesEvent(_Event):
    type: Literal["sources"] = "sources"
    turn_id: str
    sources: list[Source]


class DeltaEvent(_Event):
    type: Literal["delta"] = "delta"
    turn_id: str
    text: str


class CitationEvent(_Event):
    type: Literal["citation"] = "citation"
    turn_id: str
    start: int
    end: int
    text: str
    source_ids: list[str]


class DoneEvent(_Event):
    type: Literal["done"] = "done"
    turn_id: str
    answer: str
    provider: Literal["cohere", "offline"]
    grounded: bool = True
    """False when the answer is not drawn from the book: "the book does not cover that", or small talk."""
    suggestions: list[str] = Field(default_factory=list)
    """Up to 3 follow-up questions from the headings near the sections the answer drew on."""


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    retry_after: float | None = None


ServerEvent = Annotated[
    AcceptedEvent | SourcesEvent | DeltaEvent | CitationEvent | DoneEvent | ErrorEvent,
    Field(discriminator="type"),
]
server_event_adapter: TypeAdapter[
    AcceptedEvent | SourcesEvent | DeltaEvent | CitationEvent | DoneEvent | ErrorEvent
] = TypeAdapter(ServerEvent)

TERMINAL_TYPES = frozenset({"done", "error"})


class WelcomeEvent(BaseModel):
    """The answer to ``hello`` (not a turn event): whose the socket's asks are; ``reader_token`` only when
    the hello created the reader (keep it: it is shown once)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["welcome"] = "welcome"
    reader_id: str
    reader_token: str | None = None


class FeedbackSavedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["feedback_saved"] = "feedback_saved"
    turn_id: str


def is_terminal(event: BaseModel) -> bool:
    return getattr(event, "type", None) in TERMINAL_TYPES


def event_payload(event: _Event) -> bytes:
    """The event as stored in Redis: JSON without ``id`` (the stream entry id becomes the id)."""
    return event.model_dump_json(exclude={"id"}).encode()


def bad_frame(message: str, code: ErrorCode = ErrorCode.INVALID_FRAME) -> ErrorEvent:
    return ErrorEvent(turn_id=None, code=code, message=message)


def safe_error_parts(error: Any) -> tuple[list[str | int], str]:
    """Where a validation error is and what it says, with nothing the client sent in either: pydantic's
    message for an unknown ``type`` quotes that type, and an unknown field's location is its name."""
    loc: list[str | int] = list(error.get("loc", ()))
    kind = error.get("type")
    if kind == "union_tag_invalid":
        expected = (error.get("ctx") or {}).get("expected_tags", "")
        return loc, f"type must be one of {expected}" if expected else "unknown type"
    if kind == "extra_forbidden":
        return loc[:-1], "unknown field (not part of this frame or request)"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return loc, message[:MAX_ERROR_MESSAGE_CHARS]


def describe_validation_error(errors: list[Any]) -> str:
    """A short, safe description of what was wrong with a frame (no input values echoed back)."""
    loc, message = safe_error_parts(errors[0])
    where = ".".join(str(part) for part in loc if not isinstance(part, int))
    return f"{where}: {message}" if where else message
