"""The gateway's long-lived clients, built in the lifespan and handed to endpoints as dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends
from starlette.requests import HTTPConnection

from gateway.relay import TurnRelay
from gateway.turns import TurnStarter
from shared.settings import Settings


@dataclass(frozen=True)
class GatewayServices:
    settings: Settings
    redis: ArqRedis
    relay: TurnRelay
    turns: TurnStarter


def get_services(connection: HTTPConnection) -> GatewayServices:
    services: GatewayServices = connection.app.state.services
    return services


ServicesDep = Annotated[GatewayServices, Depends(get_services)]
