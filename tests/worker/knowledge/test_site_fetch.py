"""A sitemap source reaches its own site and nothing else: redirects and nested sitemaps checked, the host
resolved once and checked, failures that do not tell a closed port from an open one; and a folder source
that does not follow symlinks out of the folder. Real HTTP and TCP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from eval.docusaurus_site import RenderedSite, render_site, site_app
from fake_cohere.testing import serve_asgi
from tests.factories import SAMPLE_BOOK, sitemap, sitemap_index
from worker.knowledge import sources
from worker.knowledge.site_fetch import address_refusal, is_public
from worker.knowledge.sources import SourceError, load_folder, load_source

SECRET = "internal-only text that must never be indexed"


@pytest.fixture(scope="module")
def sample_site() -> RenderedSite:
    return render_site(SAMPLE_BOOK, "/docs")


class Internal:
    """Another service on the machine (a different host name for the same loopback), counting its hits."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    def app(self) -> Starlette:
        async def anything(request: Request) -> Response:
            self.hits.append(request.url.path)
            if request.url.path.endswith(".xml"):
                return sitemap([f"{request.base_url}docs/secret"])
            return PlainTextResponse(SECRET)

        return Starlette(routes=[Route("/{path:path}", anything)])


@pytest.fixture
async def internal() -> AsyncIterator[tuple[Internal, str]]:
    service = Internal()
    async with serve_asgi(service.app()) as url:
        yield service, url.replace("127.0.0.1", "localhost")


def redirect_to(target: str) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        root = str(request.base_url).rstrip("/")
        return RedirectResponse(target.replace("{root}", root), status_code=302)

    return handler


async def secret_page(request: Request) -> Response:
    return PlainTextResponse(SECRET)


def every_text(loaded: sources.LoadedSource) -> str:
    return "\n".join(d.text for d in loaded.documents)


async def test_redirects_are_checked_at_every_hop(sample_site: RenderedSite, internal: tuple[Internal, str]) -> None:
    service, other_host = internal
    moved = next(iter(sample_site.pages))
    handlers = {
        "/docs/to-another-host": redirect_to(f"{other_host}/docs/page"),
        "/docs/to-another-host-later": redirect_to("{root}/docs/hop"),
        "/docs/hop": redirect_to(f"{other_host}/docs/page"),
        "/docs/out-of-the-book": redirect_to("{root}/admin/secret"),
        "/admin/secret": secret_page,
        "/docs/loop": redirect_to("{root}/docs/loop"),
        "/docs/moved": redirect_to("{root}" + moved),
    }
    async with serve_asgi(site_app(sample_site, handlers=handlers)) as url:
        loaded = await load_source(f"{url}/sitemap.xml", "/docs")
    reasons = {s.doc: s.reason for s in loaded.skipped}
    off_host = f"redirected off the sitemap's host {url.removeprefix('http://')} (refused)"
    assert reasons["to-another-host"] == off_host
    assert reasons["to-another-host-later"] == off_host
    assert reasons["hop"] == off_host
    assert reasons["out-of-the-book"] == (
        "redirected: outside the book (not under BOOK_BASE_URL's path /docs/) (refused)"
    )
    assert reasons["loop"] == "more than 5 redirects"
    assert service.hits == []  # nothing was ever sent to the other host
    assert SECRET not in every_text(loaded)
    # a redirect inside the book is followed, and the page is linked where it really is
    followed = {d.doc: d for d in loaded.documents}["moved"]
    assert followed.page_url == f"{url}{moved}"
    assert followed.text == {d.doc: d for d in loaded.documents}[moved.removeprefix("/docs/")].text


async def test_nested_sitemaps_stay_on_the_sitemaps_host(
    sample_site: RenderedSite, internal: tuple[Internal, str]
) -> None:
    service, other_host = internal

    async def index(request: Request) -> Response:
        root = str(request.base_url).rstrip("/")
        return sitemap_index([f"{other_host}/sitemap.xml", f"{root}/sitemap.xml"])

    handlers = {"/sitemap_index.xml": index, "/sitemap-moved.xml": redirect_to(f"{other_host}/sitemap.xml")}
    async with serve_asgi(site_app(sample_site, handlers=handlers)) as url:
        loaded = await load_source(f"{url}/sitemap_index.xml", "/docs")
        with pytest.raises(SourceError, match="redirected off the sitemap's host"):
            await load_source(f"{url}/sitemap-moved.xml", "/docs")
    host = url.removeprefix("http://")
    nested = next(s for s in loaded.skipped if s.doc.startswith(other_host))
    other = other_host.removeprefix("http://")
    assert nested.reason == f"sitemap: host {other} is not the sitemap's host {host} (refused)"
    assert service.hits == []
    assert {d.doc for d in loaded.documents} == {r.removeprefix("/docs/") for r in sample_site.pages}


def test_which_addresses_count_as_private() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1"):
        assert not is_public(address), address
    for address in ("::1", "fe80::1%eth0", "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"):
        assert not is_public(address), address
    assert is_public("8.8.8.8") and is_public("2001:4860:4860::8888")
    assert address_refusal("book.example", ["8.8.8.8", "2001:4860:4860::8888"]) is None
    assert address_refusal("localhost", ["127.0.0.1", "::1"]) is None  # the sitemap itself is local
    assert address_refusal("book.example", ["8.8.8.8", "10.0.0.5"]) == (
        "host book.example resolves to private or loopback addresses as well as public ones (refused)"
    )


async def test_the_host_is_resolved_once_and_checked(sample_site: RenderedSite) -> None:
    asked: list[str] = []

    async def loopback_only(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    async def public_and_private(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"]

    async with serve_asgi(site_app(sample_site)) as url:
        port = url.rsplit(":", 1)[1]
        # "book.test" exists only in this resolver: every fetch went to the address it gave, with the name
        # in the Host header (the site builds its sitemap's URLs from it)
        loaded = await load_source(f"http://book.test:{port}/sitemap.xml", "/docs", resolver=loopback_only)
        with pytest.raises(SourceError, match="resolves to private or loopback addresses as well as public"):
            await load_source(f"http://book.test:{port}/sitemap.xml", "/docs", resolver=public_and_private)
    assert asked == ["book.test"]
    assert len(loaded.documents) == len(sample_site.pages)
    assert all(d.page_url and d.page_url.startswith(f"http://book.test:{port}/docs/") for d in loaded.documents)


@contextlib.asynccontextmanager
async def tcp_server(behaviour: str) -> AsyncIterator[int]:
    """A TCP port that closes at once, says something that is not HTTP, or never says anything."""
    quiet = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "not-http":
            writer.write(b"SSH-2.0-OpenSSH_9.6 secret-banner\r\n")
            await writer.drain()
        if behaviour == "silent":
            await quiet.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        quiet.set()
        server.close()
        await server.wait_closed()


async def test_failures_do_not_tell_what_listens_on_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "SITEMAP_TIMEOUT_S", 0.5)
    with contextlib.closing(socket.socket()) as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]  # bound, never listening: connections are refused
        messages = {}
        for behaviour in ("closes", "not-http", "silent"):
            async with tcp_server(behaviour) as port:
                with pytest.raises(SourceError) as raised:
                    await load_source(f"http://127.0.0.1:{port}/sitemap.xml", "/docs")
                messages[behaviour] = str(raised.value)
        with pytest.raises(SourceError) as refused:
            await load_source(f"http://127.0.0.1:{closed_port}/sitemap.xml", "/docs")
        messages["refused"] = str(refused.value)
    assert set(messages.values()) == {
        "cannot read the sitemap: no HTTP answer (connection refused or closed, not HTTP, or nothing within"
        " 0.5s); check its address and that the site answers"
    }


# --- a folder ------------------------------------------------------------------------------------


def test_a_folder_does_not_follow_symlinks_out_of_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.md").write_text(f"# Private\n\n{SECRET}\n", encoding="utf-8")
    book = tmp_path / "book"
    (book / "part").mkdir(parents=True)
    (book / "part" / "chapter.md").write_text("# Chapter\n\nThe book's own words.\n", encoding="utf-8")
    (book / "passwd.md").symlink_to("/etc/passwd")
    (book / "private.md").symlink_to(outside / "private.md")
    (book / "linked-folder").symlink_to(outside, target_is_directory=True)
    (book / "alias.md").symlink_to(book / "part" / "chapter.md")  # inside the folder: fine
    loaded = load_folder(book)
    assert {d.doc for d in loaded.documents} == {"part/chapter.md", "alias.md"}
    assert {s.doc: s.reason for s in loaded.skipped} == {
        "passwd.md": "a symlink to a file outside the book's folder (not read)",
        "private.md": "a symlink to a file outside the book's folder (not read)",
    }
    assert SECRET not in every_text(loaded) and "root:" not in every_text(loaded)


async def test_every_resolved_address_is_tried_until_one_answers(sample_site: RenderedSite) -> None:
    async def ipv6_first(host: str, port: int) -> list[str]:
        return ["::1", "127.0.0.1"]  # as "localhost" often resolves, with the site on IPv4 only

    async with serve_asgi(site_app(sample_site)) as url:
        port = url.rsplit(":", 1)[1]
        loaded = await load_source(f"http://localhost:{port}/sitemap.xml", "/docs", resolver=ipv6_first)
    assert len(loaded.documents) == len(sample_site.pages)
