"""Redirects point at the service's own configured origin, never at what the request's ``Host`` said.

Starlette builds its trailing-slash redirects (``/api/chat/`` → ``/api/chat``) from the request's URL, whose
host comes from the ``Host`` header: any client can make the answer point elsewhere (and a cache in front
could keep that answer for others). Every ``Location`` the app sends is rebuilt here: the first
``PUBLIC_ORIGIN`` and the path, or the path alone while no origin is configured.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RedirectsToPublicOrigin:
    def __init__(self, app: ASGIApp, public_origin: str | None) -> None:
        self.app = app
        self.public_origin = public_origin or ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_pinned(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, self.pin(value) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", [])
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_pinned)

    def pin(self, location: bytes) -> bytes:
        parts = urlsplit(location.decode("latin-1"))
        target = urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
        return (self.public_origin + target).encode("latin-1")
