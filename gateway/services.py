"""The gateway's long-lived clients, built in the lifespan and handed to endpoints as dependencies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends
from starlette.requests import HTTPConnection

from gateway.clients import SocketCounter
from gateway.conversation_owners import ConversationOwners
from gateway.metrics import GatewayMetrics
from gateway.reader_auth import ReaderAuth
from gateway.relay import TurnRelay
from gateway.turns import TurnStarter
from shared.db.database import Database
from shared.rate_limit import RateLimiter
from shared.settings import Settings


@dataclass(frozen=True)
class GatewayServices:
    settings: Settings
    redis: ArqRedis
    relay: TurnRelay
    turns: TurnStarter
    ask_limiter: RateLimiter
    admin_failures: RateLimiter
    sockets: SocketCounter
    metrics: GatewayMetrics
    database: Database
    readers: ReaderAuth
    owners: ConversationOwners
    abandoned: set[asyncio.Task[None]] = field(default_factory=set)
    """Pending cancels of turns whose socket closed; dropped on shutdown, so that a restart (after which
    clients resume through the new process) does not cancel them."""


def get_services(connection: HTTPConnection) -> GatewayServices:
    services: GatewayServices = connection.app.state.services
    return services


ServicesDep = Annotated[GatewayServices, Depends(get_services)]
