"""WebSocket ``/ws/chat``: validate frames, start/cancel/resume turns, stream their events back.

Each socket has a receiver (this module's ``ChatSession.run``) and one sender task draining an
outbound queue; turn events are put on that queue by the process's single relay reader. When the socket
closes, turns still in flight get ``resume_grace_s`` for the client to come back before they are cancelled,
so a dropped connection costs neither the answer nor tokens generated for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from gateway.clients import client_address, origin_allowed
from gateway.frame_budget import TokenBucket
from gateway.ratings import save_rating
from gateway.reader_auth import InvalidCredentials
from gateway.services import GatewayServices, ServicesDep
from gateway.sign_in import SignInUnavailable
from gateway.turns import TurnNotAccepted
from shared.db.database import DatabaseUnavailable
from shared.protocol import (
    AskFrame,
    CancelFrame,
    ErrorCode,
    ErrorEvent,
    FeedbackFrame,
    FeedbackSavedEvent,
    HelloFrame,
    ResumeFrame,
    WelcomeEvent,
    bad_frame,
    client_frame_adapter,
    describe_validation_error,
)
from shared.turn_events import TurnStreamLost
from shared.waiting import wait_event

logger = logging.getLogger(__name__)
router = APIRouter()

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
CONTROL_FRAME_BURST = 10
MAX_WAITING_RATINGS = 16  # per socket: a rating may wait up to 3 s for its turn's row
# What a frame can fail on that is not the client's doing: the client gets ``unavailable``.
UNAVAILABLE_FAULTS = (DatabaseUnavailable, SQLAlchemyError, SignInUnavailable, RedisError, OSError)


class ChatSession:
    def __init__(self, websocket: WebSocket, services: GatewayServices, address: str) -> None:
        self.websocket = websocket
        self.services = services
        self.address = address
        self.settings = services.settings
        self.outbound: asyncio.Queue[str] = asyncio.Queue()
        self.evicted = asyncio.Event()
        self.turn_tasks: dict[str, asyncio.Task[None]] = {}
        self.control_frames = TokenBucket(self.settings.resume_cancel_per_minute_per_socket, CONTROL_FRAME_BURST)
        self.reader_id: str | None = None  # set by ``hello``; asks before it are kept under no reader
        # made by the socket's first rating: most sockets never rate, and 10,000 idle ones must stay small
        self.ratings: asyncio.Queue[tuple[str, FeedbackFrame]] | None = None
        self.rating_task: asyncio.Task[None] | None = None
        self.limits = {
            "max_question_chars": self.settings.max_question_chars,
            "max_selected_text_chars": self.settings.max_selected_text_chars,
        }

    # --- outbound ----------------------------------------------------------------------------------

    def push(self, frame: str, terminal: bool = False) -> None:
        if self.evicted.is_set():
            return
        if self.outbound.qsize() >= self.settings.max_outbound_frames:
            # The client is not reading (its sends are stuck on TCP flow control): drop the socket instead
            # of buffering without bound. Its turns go on; it can reconnect and resume where it stopped.
            self.evicted.set()
            return
        self.outbound.put_nowait(frame)

    def push_event(self, event: ErrorEvent) -> None:
        self.push(event.model_dump_json(exclude_none=False))

    async def send_frames(self) -> None:
        while True:
            await self.websocket.send_text(await self.outbound.get())

    # --- inbound -----------------------------------------------------------------------------------

    async def run(self) -> None:
        sender = asyncio.create_task(self.send_frames(), name="ws-sender")
        receiver = asyncio.create_task(self.receive_frames(), name="ws-receiver")
        evicted = asyncio.create_task(self.evicted.wait(), name="ws-evicted")
        tasks = (sender, receiver, evicted)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError | OSError):
                    logger.error("socket task failed", exc_info=exc)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.leave()

    async def receive_frames(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self.push_event(bad_frame("binary frames are not accepted; send JSON text"))
                continue
            if len(text) > self.settings.max_frame_bytes or len(text.encode()) > self.settings.max_frame_bytes:
                self.push_event(bad_frame(f"frame is over {self.settings.max_frame_bytes} bytes", ErrorCode.TOO_LARGE))
                continue
            await self.handle_text(text)

    async def handle_text(self, text: str) -> None:
        try:
            frame = client_frame_adapter.validate_json(text, context=self.limits)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            if errors and errors[0]["type"] == "json_invalid":
                self.push_event(bad_frame("frame is not valid JSON"))
            else:
                too_long = any("longer than" in str(e.get("msg", "")) for e in errors)
                code = ErrorCode.TOO_LARGE if too_long else ErrorCode.INVALID_FRAME
                self.push_event(bad_frame(describe_validation_error(errors), code))
            return
        if isinstance(frame, CancelFrame | ResumeFrame) and (wait_s := self.control_frames.take()) > 0:
            self.push_event(too_many_control_frames(wait_s))
            return
        try:
            if isinstance(frame, AskFrame):
                await self.ask(frame)
            elif isinstance(frame, CancelFrame):
                await self.cancel(frame)
            elif isinstance(frame, ResumeFrame):
                await self.resume(frame)
            elif isinstance(frame, HelloFrame):
                await self.hello(frame)
            elif isinstance(frame, FeedbackFrame):
                await self.feedback(frame)
        except TurnNotAccepted as exc:
            self.push_event(exc.error)
        except UNAVAILABLE_FAULTS as exc:
            self.push_event(unavailable(exc))

    async def ask(self, frame: AskFrame) -> None:
        decision = await self.services.ask_limiter.check(self.address)
        if not decision.allowed:
            self.services.metrics.asks_refused.labels("rate_limited").inc()
            self.push_event(too_many_asks(decision.retry_after_s))
            return
        try:
            accepted = await self.services.turns.start(frame, self.reader_id)
        except TurnNotAccepted as exc:
            self.services.metrics.asks_refused.labels(exc.error.code.value).inc()
            raise
        self.services.metrics.turns_started.inc()
        self.follow(accepted.turn_id, after=None)

    async def cancel(self, frame: CancelFrame) -> None:
        if not await self.services.turns.exists(frame.turn_id):
            self.push_event(ErrorEvent(turn_id=frame.turn_id, code=ErrorCode.UNKNOWN_TURN, message="no such turn"))
            return
        await self.services.turns.cancel(frame.turn_id)

    async def resume(self, frame: ResumeFrame) -> None:
        if not await self.services.turns.exists(frame.turn_id):
            self.push_event(
                ErrorEvent(
                    turn_id=frame.turn_id,
                    code=ErrorCode.UNKNOWN_TURN,
                    message="no such turn, or its events have expired",
                )
            )
            return
        previous = self.turn_tasks.pop(frame.turn_id, None)
        if previous is not None:
            previous.cancel()
        self.follow(frame.turn_id, after=frame.after)

    async def hello(self, frame: HelloFrame) -> None:
        """Say whose this socket's asks are (tokens are never logged, nor echoed back in errors)."""
        readers = self.services.readers
        try:
            if frame.id_token is not None:
                joining = None
                if frame.reader_token is not None:  # this device's anonymous history joins the account
                    with contextlib.suppress(InvalidCredentials):
                        joining = await readers.by_token(frame.reader_token)
                welcome = WelcomeEvent(reader_id=await readers.by_id_token(frame.id_token, joining))
            elif frame.reader_token is not None:
                welcome = WelcomeEvent(reader_id=await readers.by_token(frame.reader_token))
            else:
                # creating a reader writes to the database: limited per client like asks
                decision = await self.services.ask_limiter.check(self.address)
                if not decision.allowed:
                    self.push_event(too_many_asks(decision.retry_after_s))
                    return
                created = await readers.create()
                welcome = WelcomeEvent(reader_id=created.reader_id, reader_token=created.reader_token)
        except InvalidCredentials:
            self.push_event(bad_frame("the reader token or id token is not valid", ErrorCode.UNAUTHORIZED))
            return
        self.reader_id = welcome.reader_id
        self.push(welcome.model_dump_json(exclude_none=True))

    async def feedback(self, frame: FeedbackFrame) -> None:
        """Ratings are saved in order by a task of their own: one may wait for its turn's row
        (gateway/ratings.py), and the frames after it (a cancel, the next ask) must not."""
        if self.reader_id is None:
            self.push_event(
                ErrorEvent(turn_id=frame.turn_id, code=ErrorCode.UNAUTHORIZED, message="say hello before rating")
            )
            return
        if self.ratings is None:
            self.ratings = asyncio.Queue(MAX_WAITING_RATINGS)
            self.rating_task = asyncio.create_task(self.save_ratings(self.ratings), name="ws-ratings")
        try:
            self.ratings.put_nowait((self.reader_id, frame))
        except asyncio.QueueFull:
            self.push_event(
                ErrorEvent(
                    turn_id=frame.turn_id,
                    code=ErrorCode.RATE_LIMITED,
                    message="too many ratings waiting to be saved",
                    retry_after=1.0,
                )
            )
            return

    async def save_ratings(self, ratings: asyncio.Queue[tuple[str, FeedbackFrame]]) -> None:
        while True:
            reader_id, frame = await ratings.get()
            try:
                saved = await save_rating(self.services, reader_id, frame.turn_id, frame)
            except UNAVAILABLE_FAULTS as exc:
                self.push_event(unavailable(exc))
                continue
            if saved:
                self.push(FeedbackSavedEvent(turn_id=frame.turn_id).model_dump_json())
            else:
                self.push_event(
                    ErrorEvent(turn_id=frame.turn_id, code=ErrorCode.UNKNOWN_TURN, message="no finished turn of yours")
                )

    def follow(self, turn_id: str, after: str | None) -> None:
        task = asyncio.create_task(self.forward_turn(turn_id, after), name=f"turn-{turn_id}")
        self.turn_tasks[turn_id] = task
        task.add_done_callback(lambda t: self._forget(turn_id, t))

    def _forget(self, turn_id: str, task: asyncio.Task[None]) -> None:
        if self.turn_tasks.get(turn_id) is task:
            del self.turn_tasks[turn_id]

    async def forward_turn(self, turn_id: str, after: str | None) -> None:
        await forward_turn_events(self.services, turn_id, after, self.push)

    async def leave(self) -> None:
        """The socket is gone: stop forwarding, and cancel the turns nobody resumes in time."""
        unfinished = list(self.turn_tasks)
        for task in list(self.turn_tasks.values()):
            task.cancel()
        if self.rating_task is not None:
            self.rating_task.cancel()
        for turn_id in unfinished:
            schedule_cancel_if_abandoned(self.services, turn_id)
        if self.websocket.application_state != WebSocketState.DISCONNECTED:
            code = CLOSE_TRY_AGAIN_LATER if self.evicted.is_set() else 1000
            # A client that stopped reading may never take the close frame either: do not wait on it.
            with contextlib.suppress(RuntimeError, OSError, TimeoutError, WebSocketDisconnect):
                async with asyncio.timeout(1.0):
                    await self.websocket.close(code)


async def forward_turn_events(
    services: GatewayServices, turn_id: str, after: str | None, push: Callable[[str, bool], None]
) -> None:
    """Relay one turn's events to ``push`` until its terminal event. If none arrives within the turn's
    time limit (a lost job, a dead worker), end the turn with ``timeout`` ourselves so that every accepted
    ask ends."""
    deadline = services.settings.turn_timeout_s + 5
    async with services.relay.subscribe(turn_id, push, after) as sub:
        if not await wait_event(sub.terminal, deadline):
            with contextlib.suppress(TurnStreamLost):
                await services.turns.end(
                    ErrorEvent(turn_id=turn_id, code=ErrorCode.TIMEOUT, message="the turn took too long")
                )
            await services.turns.cancel(turn_id, message="the turn took too long")
            await wait_event(sub.terminal, 5)


def schedule_cancel_if_abandoned(services: GatewayServices, turn_id: str) -> None:
    async def cancel_later() -> None:
        await asyncio.sleep(services.settings.resume_grace_s)
        if services.relay.has_subscribers(turn_id):
            return  # resumed on another socket of this process
        try:
            await services.turns.cancel(turn_id, message="the client left before the answer finished")
        except Exception as exc:
            logger.warning("could not cancel abandoned turn %s: %s", turn_id, type(exc).__name__)

    task = asyncio.create_task(cancel_later(), name=f"abandon-{turn_id}")
    services.abandoned.add(task)
    task.add_done_callback(services.abandoned.discard)


def unavailable(fault: Exception) -> ErrorEvent:
    if isinstance(fault, RedisError | OSError):
        logger.warning("redis unavailable while handling a frame: %s", type(fault).__name__)
        return bad_frame("the service is temporarily unavailable", ErrorCode.UNAVAILABLE)
    logger.warning("database unavailable while handling a frame: %s", type(fault).__name__)
    return bad_frame("your history is temporarily unavailable", ErrorCode.UNAVAILABLE)


def too_many_asks(retry_after_s: float) -> ErrorEvent:
    return ErrorEvent(
        turn_id=None,
        code=ErrorCode.RATE_LIMITED,
        message="you are asking faster than the tutor allows; please wait a moment",
        retry_after=round(retry_after_s, 3),
    )


def too_many_control_frames(retry_after_s: float) -> ErrorEvent:
    return ErrorEvent(
        turn_id=None,
        code=ErrorCode.RATE_LIMITED,
        message="too many resume or cancel frames on this connection; please wait a moment",
        retry_after=round(retry_after_s, 3),
    )


@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket, services: ServicesDep) -> None:
    settings = services.settings
    if not origin_allowed(websocket, settings):
        logger.info("refused a socket from origin %r", websocket.headers.get("origin"))
        await websocket.close(code=CLOSE_POLICY_VIOLATION)  # before accept: the handshake gets HTTP 403
        return
    address = client_address(websocket, settings.trust_proxy_headers)
    await websocket.accept()
    if not services.sockets.try_open(address):
        error = ErrorEvent(
            turn_id=None,
            code=ErrorCode.RATE_LIMITED,
            message=f"too many open connections from your address (limit {settings.max_sockets_per_client})",
            retry_after=5.0,
        )
        await websocket.send_text(error.model_dump_json())
        await websocket.close(code=CLOSE_TRY_AGAIN_LATER)
        return
    try:
        await ChatSession(websocket, services, address).run()
    finally:
        services.sockets.close(address)
