"""Who may use the admin API and see ``/ready``'s details: the bearer token ``ADMIN_TOKEN``, with failed
attempts limited per client address like asks (GCRA in Redis, shared by every gateway process).

An address past its budget of failures is refused before its token is even compared, so the limit also
stops guessing through ``/ready`` (where a right token would show the details).
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.clients import client_address
from gateway.services import GatewayServices, ServicesDep

_bearer = HTTPBearer(auto_error=False, description="ADMIN_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class Access(enum.Enum):
    GRANTED = "granted"
    OFF = "off"  # ADMIN_TOKEN unset: the admin API does not exist
    MISSING = "missing"
    WRONG = "wrong"
    LIMITED = "limited"  # too many failures from this address; see retry_after_s


@dataclass(frozen=True)
class AdminAccess:
    access: Access
    retry_after_s: float = 0.0

    @property
    def granted(self) -> bool:
        return self.access is Access.GRANTED


async def check_admin(http: Request, services: GatewayServices, given: str | None) -> AdminAccess:
    token = services.settings.admin_token
    if token is None:
        return AdminAccess(Access.OFF)
    if not given:
        return AdminAccess(Access.MISSING)
    address = client_address(http, services.settings.trust_proxy_headers)
    budget = await services.admin_failures.peek(address)
    if not budget.allowed:
        return AdminAccess(Access.LIMITED, budget.retry_after_s)
    if hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        return AdminAccess(Access.GRANTED)
    await services.admin_failures.check(address)
    return AdminAccess(Access.WRONG)


async def admin_access(http: Request, services: ServicesDep, credentials: Credentials) -> AdminAccess:
    """The admin API's dependency (its OpenAPI says it needs the bearer token)."""
    return await check_admin(http, services, credentials.credentials if credentials is not None else None)


def bearer_token(http: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, for routes that serve everyone and the admin more
    (declaring the scheme in OpenAPI would say they need it)."""
    scheme, _, value = http.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


AdminAccessDep = Annotated[AdminAccess, Depends(admin_access)]
