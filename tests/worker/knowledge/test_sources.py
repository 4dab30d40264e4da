"""Sources: a Docusaurus site read by its sitemap, served from 127.0.0.1 (eval/docusaurus_site.py renders
a docs folder as such a site), with the pages and sitemaps that go wrong in real life."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from eval.docusaurus_site import RenderedSite, render_site, site_app
from fake_cohere.testing import serve_asgi
from shared.settings import Settings
from tests.factories import SAMPLE_BOOK, knowledge_settings, sitemap, sitemap_index
from worker.knowledge import sources
from worker.knowledge.index_report import IndexingError
from worker.knowledge.indexing import IndexBuild
from worker.knowledge.markdown_chunks import chunk_book, chunk_document
from worker.knowledge.sources import SourceError, load_folder, load_source, parse_sitemap
from worker.knowledge.store import KnowledgeStore

REPO = Path(__file__).resolve().parents[3]
CORPORA = REPO / ".." / "shared" / "corpora"
QUESTIONS = REPO / "eval" / "questions.yaml"

Handler = Callable[[Request], Awaitable[Response]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[KnowledgeStore]:
    opened = await KnowledgeStore.open(knowledge_settings(tmp_path))
    yield opened
    await opened.close()


@pytest.fixture(scope="module")
def sample_site() -> RenderedSite:
    return render_site(SAMPLE_BOOK, "/docs")


NO_ANSWER = "no HTTP answer (connection refused or closed, not HTTP, or nothing within 0.5s)"
OUTSIDE = "outside the book (not under BOOK_BASE_URL's path /docs/)"


def page_name(route: str) -> str:
    return route.removeprefix("/docs/").strip("/") or "index"


async def test_a_sitemap_gives_the_same_book_as_the_folder(sample_site: RenderedSite) -> None:
    async with serve_asgi(site_app(sample_site)) as url:
        loaded = await load_source(f"{url}/sitemap.xml", "/docs")
    assert loaded.kind == "sitemap"
    assert {d.doc for d in loaded.documents} == {page_name(r) for r in sample_site.pages}
    reasons = {s.doc.removeprefix(url): s.reason for s in loaded.skipped}
    assert reasons == {
        "/": OUTSIDE,
        "/search": OUTSIDE,
        "/blog/welcome": OUTSIDE,
        "tags/robotics": "a docs listing page, not a doc (docs-tags-doc-list-page)",
    }
    from_site = [
        c for d in loaded.documents for c in chunk_document(d.text, d.doc, "/docs", page_url=d.page_url, title=d.title)
    ]
    from_folder = chunk_book(SAMPLE_BOOK, "/docs").chunks
    # same passages, same headings, and the same anchors (now on the site's own address)
    assert sorted((c.heading, " ".join(c.text.split())) for c in from_site) == sorted(
        (c.heading, " ".join(c.text.split())) for c in from_folder
    )
    assert sorted(c.url.removeprefix(url) for c in from_site) == sorted(c.url for c in from_folder)


@pytest.mark.parametrize("name", ["book-a", "book-b"])
async def test_both_corpora_index_from_a_served_sitemap(name: str, tmp_path: Path) -> None:
    folder = CORPORA / name
    site = render_site(folder, "/docs")
    names = {page.doc: page_name(route) for route, page in site.pages.items()}
    questions = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))[name]
    store = await KnowledgeStore.open(knowledge_settings(tmp_path))
    try:
        async with serve_asgi(site_app(site)) as url:
            job = IndexBuild(store, source=f"{url}/sitemap.xml", base_url="/docs", embedder=None)
            report = await job.run()
        folder_book = chunk_book(folder, "/docs")
        assert report.documents == folder_book.documents == len(site.pages)
        assert report.chunks == len(folder_book.chunks)
        assert job.progress.skipped_count == 4  # home, search, blog and the tag listing
        answered = 0
        for item in questions:
            passages = await store.search(item["question"], None, 5)
            answered += any(p.doc in {names[d] for d in item["docs"]} for p in passages)
            assert all(p.url.startswith(f"{url}/docs/") for p in passages)
        assert answered / len(questions) >= 0.9
    finally:
        await store.close()


# --- what goes wrong ----------------------------------------------------------------------------


def html_page(body: str) -> str:
    return (
        '<html class="plugin-docs docs-doc-page"><body><article>'
        f'<div class="theme-doc-markdown">{body}</div></article></body></html>'
    )


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "PAGE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(sources, "SITEMAP_TIMEOUT_S", 0.5)
    monkeypatch.setattr(sources, "MAX_PAGE_BYTES", 50_000)


async def test_bad_pages_are_skipped_with_reasons(
    sample_site: RenderedSite, short_timeouts: None, store: KnowledgeStore
) -> None:
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()  # longer than the page timeout; released when the test ends
        return HTMLResponse(html_page("<p>late</p>"))

    async def gone(request: Request) -> Response:
        return PlainTextResponse("not here", status_code=404)

    async def broken(request: Request) -> Response:
        return PlainTextResponse("oops", status_code=503)

    async def image(request: Request) -> Response:
        return Response(b"\x89PNG....", media_type="image/png")

    async def binary(request: Request) -> Response:
        return Response(b"<html>\x00\x00\x01</html>", media_type="text/html")

    async def latin1(request: Request) -> Response:
        return Response(html_page("<p>Caf\xe9</p>").encode("latin-1"), media_type="text/html; charset=utf-8")

    async def huge(request: Request) -> Response:
        return HTMLResponse(html_page("<p>" + "word " * 20_000 + "</p>"))

    async def empty(request: Request) -> Response:
        return HTMLResponse(html_page("<p> </p>"))

    handlers: dict[str, Handler] = {
        "/docs/slow": slow,
        "/docs/gone": gone,
        "/docs/broken": broken,
        "/docs/image": image,
        "/docs/binary": binary,
        "/docs/latin1": latin1,
        "/docs/huge": huge,
        "/docs/empty": empty,
    }
    async with serve_asgi(site_app(sample_site, handlers=handlers)) as url:
        job = IndexBuild(store, source=f"{url}/sitemap.xml", base_url="/docs", embedder=None)
        try:
            report = await job.run()
        finally:
            release.set()  # before the server stops: it waits for requests in flight
    reasons = {s.doc: s.reason for s in job.progress.skipped}
    assert reasons["slow"] == NO_ANSWER
    assert reasons["gone"] == "HTTP 404"
    assert reasons["broken"] == "HTTP 503"
    assert reasons["image"] == "not an HTML page (its Content-Type is not HTML)"
    assert reasons["binary"] == "binary content (contains NUL bytes)"
    assert reasons["latin1"] == "not valid text in its declared encoding"
    assert reasons["huge"].startswith("too large")
    assert reasons["empty"] == "no text in the article"
    assert job.progress.status == "complete" and report.documents == len(sample_site.pages)


async def test_a_transient_failure_keeps_the_previous_version_of_that_page(
    sample_site: RenderedSite, store: KnowledgeStore
) -> None:
    flaky_route = next(iter(sample_site.pages))
    failing = False

    async def flaky(request: Request) -> Response:
        if failing:
            return PlainTextResponse("try later", status_code=502)
        return HTMLResponse(sample_site.pages[flaky_route].html)

    async with serve_asgi(site_app(sample_site, handlers={flaky_route: flaky})) as url:
        first = await IndexBuild(store, source=f"{url}/sitemap.xml", base_url="/docs", embedder=None).run()
        failing = True
        job = IndexBuild(store, source=f"{url}/sitemap.xml", base_url="/docs", embedder=None, mode="incremental")
        report = await job.run()
    # nothing changed but one page could not be fetched: it stays as it was, nothing is rebuilt
    assert {s.doc: s.reason for s in job.progress.skipped}[page_name(flaky_route)] == "HTTP 502"
    assert not report.changed and report.chunks == first.chunks


@pytest.mark.parametrize("failure", ["404", "timeout", "not-xml", "entities"])
async def test_a_sitemap_that_cannot_be_read_fails_the_job_and_changes_nothing(
    failure: str, short_timeouts: None, sample_site: RenderedSite, store: KnowledgeStore
) -> None:
    good = await IndexBuild(store, source=str(SAMPLE_BOOK), base_url="/docs", embedder=None).run()
    release = asyncio.Event()

    async def serve_sitemap(request: Request) -> Response:
        if failure == "404":
            return PlainTextResponse("nope", status_code=404)
        if failure == "timeout":
            await release.wait()
        if failure == "not-xml":
            return HTMLResponse("Not a sitemap <<")
        body = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><urlset><url><loc>&a;</loc></url></urlset>'
        return Response(body, media_type="application/xml")

    async with serve_asgi(site_app(sample_site, handlers={"/sitemap.xml": serve_sitemap})) as url:
        job = IndexBuild(store, source=f"{url}/sitemap.xml", base_url="/docs", embedder=None)
        try:
            with pytest.raises(IndexingError, match="cannot read the sitemap"):
                await job.run()
        finally:
            release.set()
    expected = {
        "404": "sitemap: HTTP 404",
        "timeout": f"sitemap: {NO_ANSWER}",
        "not-xml": "sitemap: not valid XML",
        "entities": "sitemap: not a sitemap (declares a DTD or entities)",
    }[failure]
    assert job.progress.status == "failed"
    assert job.progress.skipped[0].reason.startswith(expected)
    assert await store.versions.names() == [good.collection]


async def test_a_sitemap_index_is_followed_one_level(sample_site: RenderedSite) -> None:
    async def index(request: Request) -> Response:
        root = str(request.base_url).rstrip("/")
        return sitemap_index([f"{root}/docs/sitemap.xml", f"{root}/missing/sitemap.xml"])

    async def docs_sitemap(request: Request) -> Response:
        root = str(request.base_url).rstrip("/")
        return sitemap(f"{root}{route}" for route in sample_site.pages)

    async with serve_asgi(
        site_app(sample_site, handlers={"/sitemap_index.xml": index, "/docs/sitemap.xml": docs_sitemap})
    ) as url:
        loaded = await load_source(f"{url}/sitemap_index.xml", "/docs")
    assert len(loaded.documents) == len(sample_site.pages)
    assert [s.reason for s in loaded.skipped] == ["sitemap: HTTP 404"]


def test_parse_sitemap() -> None:
    kind, urls = parse_sitemap(
        b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc> https://x.org/docs/a#frag </loc></url><url><loc>ftp://x.org/b</loc></url>"
        b"<url><lastmod>2024-01-01</lastmod></url></urlset>"
    )
    assert (kind, urls) == ("urlset", ["https://x.org/docs/a"])
    with pytest.raises(ValueError, match="the root element is neither <urlset> nor <sitemapindex>"):
        parse_sitemap(b"<html></html>")


def test_a_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a folder"):
        load_folder(tmp_path / "absent")


async def test_a_refused_connection_is_a_source_error(tmp_path: Path) -> None:
    settings: Settings = knowledge_settings(tmp_path)
    with pytest.raises(SourceError, match=re.escape(NO_ANSWER.replace("0.5s", "10s"))):
        await load_source("http://127.0.0.1:9/sitemap.xml", settings.book_base_url)


async def test_a_wrong_base_url_is_named_in_every_skip_and_in_the_failure(
    sample_site: RenderedSite, store: KnowledgeStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve_asgi(site_app(sample_site)) as url:
        port = url.rsplit(":", 1)[1]
        job = IndexBuild(store, source=f"{url}/sitemap.xml", base_url=f"http://localhost:{port}/docs", embedder=None)
        with pytest.raises(IndexingError) as failed:
            await job.run()
    wrong_host = f"host 127.0.0.1:{port} is not BOOK_BASE_URL's host localhost:{port}"
    pages = len(sample_site.pages) + len(sample_site.other)
    assert {s.reason for s in job.progress.skipped} == {wrong_host}
    assert str(failed.value) == (
        f"no page to index: {pages} of {pages} skipped, {pages} because {wrong_host}; "
        f"set BOOK_BASE_URL to the book's path alone (like /docs) or on host 127.0.0.1:{port}"
    )
    # the worker's log sums the skips up by reason
    assert f"{pages} of {pages} documents of the sitemap skipped, by reason: {pages}: {wrong_host}" in caplog.text
