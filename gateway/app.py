"""The gateway's FastAPI application: clients are built in the lifespan, never at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from fastapi import FastAPI
from redis.asyncio import ConnectionPool

from gateway import chat_socket, http_routes
from gateway.relay import TurnRelay
from gateway.services import GatewayServices
from gateway.turns import TurnStarter
from shared import keys
from shared.jobs import job_deserializer, job_serializer
from shared.settings import Settings

logger = logging.getLogger(__name__)


def build_redis(settings: Settings) -> ArqRedis:
    """One pooled client for everything but the relay's blocking read. Connections are made lazily, so
    the gateway starts (and answers /health, and /ready with 503) even while Redis is still starting."""
    pool = ConnectionPool.from_url(
        settings.effective_redis_url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )
    return ArqRedis(
        connection_pool=pool,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        default_queue_name=keys.QUEUE_NAME,
    )


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = build_redis(settings)
        relay = TurnRelay(settings.effective_redis_url, redis)
        await relay.start()
        app.state.services = GatewayServices(
            settings=settings, redis=redis, relay=relay, turns=TurnStarter(redis, settings)
        )
        logger.info("gateway ready on port %d (provider: %s)", settings.port, settings.provider)
        try:
            yield
        finally:
            await relay.stop()
            await redis.aclose(close_connection_pool=True)

    app = FastAPI(
        title="Physical AI & Humanoid Robotics tutor",
        summary="Ask the book: a streamed, cited RAG chat over WebSocket (/ws/chat) and REST.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.include_router(http_routes.router)
    app.include_router(chat_socket.router)
    return app
