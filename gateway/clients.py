"""Who is asking: the client's address, whether its browser origin may connect, and its open sockets."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection


def client_address(connection: HTTPConnection, trust_proxy_headers: bool) -> str:
    """The client's address. Behind a trusted proxy (Spaces) it is the last X-Forwarded-For entry — the
    one the proxy itself appended; earlier entries are whatever the client claimed and are ignored."""
    if trust_proxy_headers:
        forwarded = connection.headers.get("x-forwarded-for", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1][:64]
    return connection.client.host if connection.client else "unknown"


def origin_allowed(connection: HTTPConnection, allowed: list[str]) -> bool:
    """Browsers send ``Origin`` with every WebSocket handshake but do not apply CORS to it, so the server must
    check it: the service's own origin and the configured ones pass. Clients that are not browsers send no
    Origin (and cannot be stopped by this check anyway), so a missing header passes."""
    origin = connection.headers.get("origin")
    if origin is None or "*" in allowed:
        return True
    if origin.rstrip("/") in {a.rstrip("/") for a in allowed}:
        return True
    host = connection.headers.get("host")
    return host is not None and urlsplit(origin).netloc == host


class SocketCounter:
    """Open sockets per client address in this process (the gateway is one process per container)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    def try_open(self, address: str) -> bool:
        if self._open[address] >= self._limit:
            return False
        self._open[address] += 1
        return True

    def close(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    @property
    def total(self) -> int:
        return sum(self._open.values())
