"""Fetching a book's site without reaching anything else: one host, resolved once, redirects checked hop by hop.

Everything a sitemap source downloads (the sitemap, nested sitemaps, pages) goes to the sitemap's own host
(an ``http`` sitemap may be upgraded to ``https`` on the same host). The host is resolved once per load and
every request is sent to an address from that answer, so a DNS answer that changes halfway (rebinding)
cannot move a fetch elsewhere. Every address the host resolves to must be public, unless all of them are
private, loopback or link-local: then the sitemap itself is on such a network (a local build, the tests)
and so is the book. Redirects are followed here, not by httpx, so that each ``Location`` is checked against
the same rules (and, for a page, the book's path) before anything is sent to it.

Failure texts say what failed in our terms; they never repeat what the remote end sent (a header, a
``Location``, an exception's text), and a refused connection, a closed one, a server that is not HTTP and
one that never answers read the same, so the reasons cannot be used to scan ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

MAX_REDIRECTS = 5
USER_AGENT = "physical-ai-tutor-indexer/1.0"
_DEFAULT_PORTS = {"http": 80, "https": 443}

# host, port -> the addresses it resolves to (tests pass their own in place of DNS)
Resolver = Callable[[str, int], Awaitable[list[str]]]
# a URL -> why a fetch may not go there, or None
UrlRule = Callable[[str], str | None]


class FetchError(Exception):
    """A fetch that failed; ``reason`` is safe to show (it quotes nothing the remote end sent)."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # where the body came from, after redirects
    body: bytes
    content_type: str


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    """Whether an address is on the public internet (not private, loopback, link-local, reserved…)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def address_refusal(host: str, addresses: list[str]) -> str | None:
    """Why the addresses a host resolves to may not be fetched from; None when they may.

    All public, or all not public (the sitemap is on a local or private network): fine. A mix is refused,
    since the private ones are not the site the public ones are."""
    if not addresses:
        return f"host {host} has no address"
    public = [is_public(a) for a in addresses]
    if any(public) and not all(public):
        return f"host {host} resolves to private or loopback addresses as well as public ones (refused)"
    return None


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def netloc(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if _DEFAULT_PORTS.get(scheme) == port else f"{shown}:{port}"


class SiteFetcher:
    """GETs on one site's host, through addresses resolved once (``open``)."""

    def __init__(self, client: httpx.AsyncClient, site_url: str, addresses: list[str]) -> None:
        self._client = client
        self.scheme, self.host, self.port = origin(site_url)
        # tried in order until one takes the connection (``localhost`` is often ::1 first, served on IPv4)
        self._addresses = addresses

    @classmethod
    async def open(cls, client: httpx.AsyncClient, site_url: str, resolver: Resolver | None = None) -> SiteFetcher:
        """Resolve and check the site's host; ``FetchError`` when it may not (or cannot) be fetched from."""
        scheme, host, port = origin(site_url)
        if scheme not in _DEFAULT_PORTS or not host:
            raise FetchError("not an http(s) URL")
        try:
            addresses = await (resolver or system_resolver)(host, port)
        except OSError:
            raise FetchError(f"cannot resolve host {host}", transient=True) from None
        refusal = address_refusal(host, addresses)
        if refusal is not None:
            raise FetchError(refusal)
        return cls(client, site_url, addresses)

    @property
    def netloc(self) -> str:
        return netloc(self.scheme, self.host, self.port)

    def off_site(self, url: str) -> str | None:
        """Why ``url`` is not on this site's host; None when it is."""
        scheme, host, port = origin(url)
        if host == self.host and (scheme, port) == (self.scheme, self.port):
            return None
        if host == self.host and (self.scheme, scheme, port) == ("http", "https", 443):
            return None  # an upgrade to https on the same host
        return f"host {netloc(scheme, host, port)} is not the sitemap's host {self.netloc}"

    async def get(self, url: str, *, limit: int, seconds: float, rule: UrlRule | None = None) -> Fetched:
        """The body of a 200 answer, at most ``limit`` bytes within ``seconds`` (the whole download: httpx's
        timeouts bound each read, which a slow trickle never trips). Each redirect's target must be on this
        host and pass ``rule``."""
        answered = False
        try:
            async with asyncio.timeout(seconds):
                current = url
                for _ in range(MAX_REDIRECTS + 1):
                    async with self._stream(current) as response:
                        answered = True
                        if response.is_redirect:
                            current = self._redirect_target(current, response, rule)
                            continue
                        if response.status_code != 200:
                            raise FetchError(f"HTTP {response.status_code}", transient=response.status_code >= 500)
                        body = await _read_limited(response, limit)
                        return Fetched(current, body, response.headers.get("content-type", ""))
                raise FetchError(f"more than {MAX_REDIRECTS} redirects")
        except (TimeoutError, httpx.TimeoutException):
            if answered:
                raise FetchError(f"timed out after {seconds:g}s", transient=True) from None
            raise FetchError(_no_answer(seconds), transient=True) from None
        except httpx.HTTPError:
            if answered:
                raise FetchError("the download broke off", transient=True) from None
            raise FetchError(_no_answer(seconds), transient=True) from None

    @contextlib.asynccontextmanager
    async def _stream(self, url: str) -> AsyncIterator[httpx.Response]:
        """GET ``url`` from the first resolved address that takes the connection; the one that did is tried
        first from then on."""
        for index, address in enumerate(self._addresses):
            pinned, headers, extensions = _pinned(url, address)
            connected = False
            try:
                async with self._client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
                    connected = True
                    if index:
                        self._addresses = [address, *(a for a in self._addresses if a != address)]
                    yield response
                    return
            except httpx.ConnectError:
                if connected or index == len(self._addresses) - 1:
                    raise

    def _redirect_target(self, current: str, response: httpx.Response, rule: UrlRule | None) -> str:
        location = str(response.headers.get("location", ""))
        target = urljoin(current, location)
        if origin(target)[0] not in _DEFAULT_PORTS:
            raise FetchError("redirected to something that is not an http(s) URL (refused)")
        if self.off_site(target) is not None:
            raise FetchError(f"redirected off the sitemap's host {self.netloc} (refused)")
        why = rule(target) if rule is not None else None
        if why is not None:
            raise FetchError(f"redirected: {why} (refused)")
        return target


def _pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``url`` sent to ``address``, with the real host in ``Host`` and in TLS (SNI, and the certificate's
    check)."""
    parts = urlsplit(url)
    scheme, host, port = origin(url)
    pinned = urlunsplit((scheme, netloc(scheme, address, port), parts.path or "/", parts.query, ""))
    extensions: dict[str, Any] = {"sni_hostname": host} if scheme == "https" else {}
    return pinned, {"host": netloc(scheme, host, port)}, extensions


def _no_answer(seconds: float) -> str:
    return f"no HTTP answer (connection refused or closed, not HTTP, or nothing within {seconds:g}s)"


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchError(f"too large (over {limit} bytes)")
    body = bytearray()
    async for piece in response.aiter_bytes():
        body.extend(piece)
        if len(body) > limit:
            raise FetchError(f"too large (over {limit} bytes)")
    return bytes(body)


def new_http_client(concurrency: int, page_timeout_s: float) -> httpx.AsyncClient:
    """The client a sitemap load uses: no redirects of its own (``SiteFetcher`` follows them) and no proxy
    from the environment (requests go to the address resolved and checked here)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(page_timeout_s, connect=5.0),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency * 2),
        headers={"user-agent": USER_AGENT},
    )
