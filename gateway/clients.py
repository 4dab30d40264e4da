"""Who is asking: the client's address, whether its browser origin may connect, and its open sockets."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from shared.settings import Settings, normalize_origin

# Without a configured public origin the service's own address is unknown: pages served from this machine
# (development, tests) may connect. The Host header says nothing: any client can set it.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def client_address(connection: HTTPConnection, trust_proxy_headers: bool) -> str:
    """The client's address. Behind a trusted proxy (Spaces) it is the last X-Forwarded-For entry — the
    one the proxy itself appended; earlier entries are whatever the client claimed and are ignored."""
    if trust_proxy_headers:
        forwarded = connection.headers.get("x-forwarded-for", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1][:64]
    return connection.client.host if connection.client else "unknown"


def origin_allowed(connection: HTTPConnection, settings: Settings) -> bool:
    """Browsers send ``Origin`` with every WebSocket handshake but do not apply CORS to it, so the server must
    check it, scheme included: the service's own origins (``PUBLIC_ORIGIN``) and ``ALLOWED_ORIGINS`` pass.
    Clients that are not browsers send no Origin (and cannot be stopped by this check anyway), so a missing
    header passes."""
    origin = connection.headers.get("origin")
    if origin is None or "*" in settings.allowed_origins:
        return True
    normal = normalize_origin(origin)
    if normal is None:
        return False
    own = settings.public_origins
    if normal in own or normal in {normalize_origin(a) for a in settings.allowed_origins}:
        return True
    return not own and urlsplit(normal).hostname in _LOOPBACK_HOSTS


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
