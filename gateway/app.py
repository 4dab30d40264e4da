"""The gateway's FastAPI application: clients are built in the lifespan, never at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from arq.connections import ArqRedis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import SQLAlchemyError

from gateway import (
    admin_gaps_routes,
    admin_history_routes,
    admin_routes,
    chat_socket,
    history_routes,
    http_routes,
    pages,
)
from gateway.clients import SocketCounter
from gateway.conversation_owners import ConversationOwners
from gateway.http_limits import BodyDeadline, OneRequestPerConnection
from gateway.metrics import GatewayMetrics
from gateway.reader_auth import ReaderAuth
from gateway.reaper import run_reaper
from gateway.redirects import RedirectsToPublicOrigin
from gateway.relay import TurnRelay
from gateway.services import GatewayServices
from gateway.sign_in import JwksVerifier, SignInUnavailable
from gateway.turns import TurnStarter
from shared.arq_redis import arq_redis
from shared.db.database import Database, DatabaseUnavailable
from shared.protocol import safe_error_parts
from shared.rate_limit import RateLimiter
from shared.settings import Settings

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

REAPER_STOP_S = 2.0
ADMIN_FAILURE_BURST = 5


def build_redis(settings: Settings) -> ArqRedis:
    """One pooled client for everything but the relay's blocking read; the gateway starts (and answers
    /health, and /ready with 503) even while Redis is still starting."""
    return arq_redis(settings, health_check_interval=30)


async def validation_error_without_input(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, without the ``input`` it would echo (a 60 KB field comes back 60 KB long)."""
    assert isinstance(exc, RequestValidationError)
    detail = []
    for error in exc.errors():
        loc, message = safe_error_parts(error)
        detail.append({"type": error["type"], "loc": loc, "msg": message})
    return JSONResponse({"detail": detail}, status_code=422)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = build_redis(settings)
        relay = TurnRelay(settings.effective_redis_url, redis)
        await relay.start()
        sign_in_http = sign_in_client() if settings.auth_jwks_url is not None else None
        sign_in = build_sign_in(settings, sign_in_http)
        database = Database(settings)
        database.start()  # migrates in the background; chat does not wait for it
        owners = ConversationOwners(redis, database, settings.conversation_ttl_s)
        app.state.services = GatewayServices(
            settings=settings,
            redis=redis,
            relay=relay,
            turns=TurnStarter(redis, settings, owners),
            ask_limiter=RateLimiter(redis, "asks", settings.asks_per_minute_per_client),
            admin_failures=RateLimiter(
                redis, "admin_failures", settings.admin_failures_per_minute_per_client, burst=ADMIN_FAILURE_BURST
            ),
            sockets=SocketCounter(settings.max_sockets_per_client),
            metrics=GatewayMetrics(relay),
            database=database,
            readers=ReaderAuth(database, sign_in),
            owners=owners,
        )
        stop_reaper = asyncio.Event()
        reaper = asyncio.create_task(
            run_reaper(redis, app.state.services.turns.events, settings.provider, stop_reaper), name="reaper"
        )
        logger.info("gateway ready on port %d (provider: %s)", settings.port, settings.provider)
        try:
            yield
        finally:
            stop_reaper.set()
            abandoned = list(app.state.services.abandoned)
            for task in abandoned:
                task.cancel()
            # Bounded: shutdown must finish even if a task ignores its stop (see run_reaper). The cancelled
            # tasks unwind meanwhile, so none is left holding a Redis connection when the loop closes.
            await asyncio.wait({reaper, *abandoned}, timeout=REAPER_STOP_S)
            if not reaper.done():
                reaper.cancel()
            await relay.stop()
            await database.close()
            if sign_in_http is not None:
                await sign_in_http.aclose()
            await redis.aclose(close_connection_pool=True)

    # /docs with Swagger UI's files served from the package (FastAPI's self-hosted docs recipe): no CDN.
    app = FastAPIOffline(
        title="Physical AI & Humanoid Robotics tutor",
        summary="Ask the book: a streamed, cited RAG chat over WebSocket (/ws/chat) and REST.",
        version="1.0.0",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, validation_error_without_input)
    # CORS for the REST API from the same list that admits WebSocket origins (browsers apply CORS to
    # fetch() but not to sockets; gateway/clients.py checks those).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Content-Type", "Authorization"],
    )
    app.add_middleware(BodyDeadline, timeout_s=settings.http_request_timeout_s)
    app.add_middleware(OneRequestPerConnection)
    app.add_middleware(RedirectsToPublicOrigin, public_origin=next(iter(settings.public_origins), None))
    # Bodies over the limit are refused as they arrive (413 at once when Content-Length says so).
    app.include_router(http_routes.router, max_body_size=settings.max_request_body_bytes)
    app.include_router(chat_socket.router)
    app.include_router(pages.router)
    app.include_router(admin_routes.router, max_body_size=settings.max_request_body_bytes)
    app.include_router(history_routes.router, max_body_size=settings.max_request_body_bytes)
    app.include_router(admin_history_routes.router)
    app.include_router(admin_gaps_routes.router)
    app.add_exception_handler(DatabaseUnavailable, _history_unavailable)
    app.add_exception_handler(SQLAlchemyError, _history_unavailable)
    app.add_exception_handler(SignInUnavailable, _history_unavailable)
    return app


def sign_in_client() -> httpx.AsyncClient:
    """The HTTP client that fetches the sign-in key set. Sign-in is the gateway's only use of httpx, whose
    import also loads rich, Pygments and click (its command line): imported here, only by a gateway that
    signs readers in."""
    import httpx

    return httpx.AsyncClient()


def build_sign_in(settings: Settings, http: httpx.AsyncClient | None) -> JwksVerifier | None:
    if settings.auth_jwks_url is None or http is None or not settings.auth_issuer or not settings.auth_audience:
        return None
    return JwksVerifier(str(settings.auth_jwks_url), settings.auth_issuer, settings.auth_audience, http)


async def _history_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """History needs the database; chat does not. A request that cannot reach it is told so, with no detail."""
    logger.warning("database unavailable for a request: %s", type(exc).__name__)
    return JSONResponse(
        {"error": {"code": "unavailable", "message": "history is temporarily unavailable; try again shortly"}},
        status_code=503,
        headers={"Retry-After": "5"},
    )
