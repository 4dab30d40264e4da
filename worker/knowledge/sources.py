"""Where the book comes from: a folder of Markdown/MDX, or a deployed Docusaurus site by its ``sitemap.xml``.

Both give the same thing, a list of ``SourceDocument`` (a doc's path relative to the source's root, its
Markdown, where it is published) and the documents that could not be used, each with a reason. A bad
document never stops the others; only a source that cannot be read at all (a missing folder, a sitemap
that answers 404 or times out) raises ``SourceError``.

A sitemap's pages are fetched with a bounded number of concurrent requests, each with a timeout and a size
limit. Only pages under the book's base URL (``BOOK_BASE_URL``'s path) are the book; the rest of the site
(home page, blog, search, tag lists) is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from worker.knowledge.html_pages import page_markdown
from worker.knowledge.markdown_chunks import (
    MAX_FILE_BYTES,
    DocumentError,
    markdown_files,
    read_markdown_file,
)

SITEMAP_TIMEOUT_S = 10.0
PAGE_TIMEOUT_S = 10.0
FETCH_CONCURRENCY = 4
MAX_PAGES = 5000
MAX_SITEMAPS = 20
MAX_SITEMAP_BYTES = 10_000_000
MAX_PAGE_BYTES = MAX_FILE_BYTES
USER_AGENT = "physical-ai-tutor-indexer/1.0"

_SITEMAP_NS = re.compile(r"^\{[^}]*\}")


@dataclass(frozen=True, slots=True)
class SourceDocument:
    doc: str  # path relative to the source's root (POSIX)
    text: str  # Markdown (with front matter for files)
    page_url: str | None = None  # where a fetched page is published; None: derived from doc + BOOK_BASE_URL
    title: str | None = None  # a fetched page's title

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SkippedDocument:
    doc: str
    reason: str
    transient: bool = False  # a network failure: the document may well still exist


class SourceError(RuntimeError):
    """The source as a whole cannot be read; the message says which and why."""

    def __init__(self, message: str, skipped: list[SkippedDocument] | None = None) -> None:
        super().__init__(message)
        self.skipped = skipped or []


@dataclass(slots=True)
class LoadedSource:
    source: str
    kind: str  # "folder" | "sitemap"
    documents: list[SourceDocument] = field(default_factory=list)
    skipped: list[SkippedDocument] = field(default_factory=list)


ProgressCallback = Callable[[int, int], None]  # (documents read, documents found)


def is_sitemap(source: str) -> bool:
    return source.strip().lower().startswith(("http://", "https://"))


async def load_source(
    source: str,
    base_url: str,
    *,
    on_progress: ProgressCallback | None = None,
    client: httpx.AsyncClient | None = None,
) -> LoadedSource:
    """Read every document of ``source`` (a folder path or a sitemap URL)."""
    if is_sitemap(source):
        if client is not None:
            return await load_sitemap(source, base_url, client, on_progress=on_progress)
        async with new_http_client() as owned:
            return await load_sitemap(source, base_url, owned, on_progress=on_progress)
    return await asyncio.to_thread(load_folder, Path(source), on_progress)


# --------------------------------------------------------------------------------------------------
# A folder


def load_folder(source: Path, on_progress: ProgressCallback | None = None) -> LoadedSource:
    if not source.is_dir():
        raise SourceError(f"book source {source} is not a folder")
    loaded = LoadedSource(source=str(source), kind="folder")
    files = list(markdown_files(source))
    for done, (path, doc) in enumerate(files, start=1):
        if any(part.startswith("_") for part in PurePosixPath(doc).parts):
            loaded.skipped.append(SkippedDocument(doc, "partial (a name starting with '_' is not a page)"))
        else:
            try:
                loaded.documents.append(SourceDocument(doc, read_markdown_file(path)))
            except DocumentError as exc:
                loaded.skipped.append(SkippedDocument(doc, str(exc)))
        if on_progress is not None:
            on_progress(done, len(files))
    return loaded


# --------------------------------------------------------------------------------------------------
# A sitemap


def new_http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(PAGE_TIMEOUT_S, connect=5.0),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=FETCH_CONCURRENCY * 2),
        headers={"user-agent": USER_AGENT},
    )


async def load_sitemap(
    sitemap_url: str,
    base_url: str,
    client: httpx.AsyncClient,
    *,
    on_progress: ProgressCallback | None = None,
) -> LoadedSource:
    loaded = LoadedSource(source=sitemap_url, kind="sitemap")
    pages = await _page_urls(sitemap_url, client, loaded)
    book_root = _book_root(sitemap_url, base_url)
    wanted: list[tuple[str, str]] = []
    seen: set[str] = set()
    for url in pages:
        doc = _doc_for(url, book_root)
        if doc is None:
            loaded.skipped.append(SkippedDocument(url, f"outside the book (BOOK_BASE_URL {book_root.path})"))
        elif doc in seen:
            loaded.skipped.append(SkippedDocument(url, f"duplicate of {doc}"))
        else:
            seen.add(doc)
            wanted.append((url, doc))
    if len(wanted) > MAX_PAGES:
        for url, _ in wanted[MAX_PAGES:]:
            loaded.skipped.append(SkippedDocument(url, f"over the limit of {MAX_PAGES} pages"))
        wanted = wanted[:MAX_PAGES]

    semaphore = asyncio.Semaphore(FETCH_CONCURRENCY)
    done = 0
    results: list[SourceDocument | SkippedDocument | None] = [None] * len(wanted)

    async def fetch(index: int, url: str, doc: str) -> None:
        nonlocal done
        async with semaphore:
            results[index] = await _fetch_page(client, url, doc)
        done += 1
        if on_progress is not None:
            on_progress(done, len(wanted))

    async with asyncio.TaskGroup() as group:
        for index, (url, doc) in enumerate(wanted):
            group.create_task(fetch(index, url, doc))
    for result in results:
        if isinstance(result, SourceDocument):
            loaded.documents.append(result)
        elif isinstance(result, SkippedDocument):
            loaded.skipped.append(result)
    return loaded


@dataclass(frozen=True, slots=True)
class _BookRoot:
    scheme: str
    netloc: str
    path: str  # always ends with '/'


def _book_root(sitemap_url: str, base_url: str) -> _BookRoot:
    """Where the book lives on the site: BOOK_BASE_URL resolved against the sitemap's address."""
    absolute = urlsplit(urljoin(sitemap_url, base_url or "/"))
    path = absolute.path if absolute.path.endswith("/") else absolute.path + "/"
    return _BookRoot(absolute.scheme, absolute.netloc.lower(), path)


def _doc_for(url: str, root: _BookRoot) -> str | None:
    parts = urlsplit(url)
    path = posixpath.normpath(parts.path or "/").rstrip("/") + "/"
    if parts.netloc.lower() != root.netloc or not path.startswith(root.path):
        return None
    relative = path[len(root.path) :].strip("/")
    for suffix in (".html", ".htm"):
        relative = relative.removesuffix(suffix)
    return relative or "index"


async def _get(client: httpx.AsyncClient, url: str, limit: int, seconds: float) -> tuple[bytes, str]:
    """The body and content type of a 200 answer; raises ``_FetchError`` otherwise. ``seconds`` bounds the
    whole download (httpx's timeouts bound each read, which a slow trickle of bytes never trips)."""
    try:
        async with asyncio.timeout(seconds):
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _FetchError(f"HTTP {response.status_code}", transient=response.status_code >= 500)
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise _FetchError(f"too large ({declared} bytes, limit {limit})")
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body.extend(piece)
                    if len(body) > limit:
                        raise _FetchError(f"too large (over {limit} bytes)")
                return bytes(body), response.headers.get("content-type", "")
    except (TimeoutError, httpx.TimeoutException):
        raise _FetchError(f"timed out after {seconds:g}s", transient=True) from None
    except httpx.HTTPError as exc:
        raise _FetchError(f"cannot fetch ({type(exc).__name__})", transient=True) from None


class _FetchError(Exception):
    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


async def _page_urls(sitemap_url: str, client: httpx.AsyncClient, loaded: LoadedSource) -> list[str]:
    """Page URLs of a sitemap, following a sitemap index one level down (at most ``MAX_SITEMAPS`` files)."""
    try:
        body, _ = await _get(client, sitemap_url, MAX_SITEMAP_BYTES, SITEMAP_TIMEOUT_S)
        kind, locations = parse_sitemap(body)
    except _FetchError as exc:
        skipped = SkippedDocument(sitemap_url, f"sitemap: {exc.reason}", transient=exc.transient)
        raise SourceError(f"cannot read the sitemap {sitemap_url}: {exc.reason}", [skipped]) from None
    except ValueError as exc:
        skipped = SkippedDocument(sitemap_url, f"sitemap: {exc}")
        raise SourceError(f"cannot read the sitemap {sitemap_url}: {exc}", [skipped]) from None
    if kind == "urlset":
        return _unique(locations)
    pages: list[str] = []
    for nested in locations[:MAX_SITEMAPS]:
        try:
            body, _ = await _get(client, nested, MAX_SITEMAP_BYTES, SITEMAP_TIMEOUT_S)
            nested_kind, nested_locations = parse_sitemap(body)
        except _FetchError as exc:
            loaded.skipped.append(SkippedDocument(nested, f"sitemap: {exc.reason}", transient=exc.transient))
            continue
        except ValueError as exc:
            loaded.skipped.append(SkippedDocument(nested, f"sitemap: {exc}"))
            continue
        if nested_kind != "urlset":
            loaded.skipped.append(SkippedDocument(nested, "sitemap: nested sitemap index (only one level followed)"))
            continue
        pages.extend(nested_locations)
    for nested in locations[MAX_SITEMAPS:]:
        loaded.skipped.append(SkippedDocument(nested, f"sitemap: over the limit of {MAX_SITEMAPS} sitemaps"))
    return _unique(pages)


def _unique(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


def parse_sitemap(body: bytes) -> tuple[str, list[str]]:
    """("urlset" | "sitemapindex", the ``<loc>`` URLs); ``ValueError`` for anything else.

    A sitemap has no business declaring a DTD or entities, so a document that does is refused before
    parsing (no entity expansion, no external references)."""
    head = body[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in body.lower():
        raise ValueError("not a sitemap (declares a DTD or entities)")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not valid XML ({exc})") from None
    kind = _SITEMAP_NS.sub("", root.tag)
    if kind not in {"urlset", "sitemapindex"}:
        raise ValueError(f"not a sitemap (root element <{kind}>)")
    child = "url" if kind == "urlset" else "sitemap"
    locations: list[str] = []
    for entry in root:
        if _SITEMAP_NS.sub("", entry.tag) != child:
            continue
        for item in entry:
            if _SITEMAP_NS.sub("", item.tag) == "loc" and item.text and item.text.strip():
                url = item.text.strip()
                if url.lower().startswith(("http://", "https://")):
                    locations.append(_without_fragment(url))
    return kind, locations


def _without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


async def _fetch_page(client: httpx.AsyncClient, url: str, doc: str) -> SourceDocument | SkippedDocument:
    try:
        body, content_type = await _get(client, url, MAX_PAGE_BYTES, PAGE_TIMEOUT_S)
    except _FetchError as exc:
        return SkippedDocument(doc, exc.reason, transient=exc.transient)
    if content_type and "html" not in content_type.lower():
        return SkippedDocument(doc, f"not an HTML page ({content_type.split(';')[0].strip()})")
    if b"\x00" in body[:8192]:
        return SkippedDocument(doc, "binary content (contains NUL bytes)")
    try:
        html = body.decode(_charset(content_type) or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return SkippedDocument(doc, "not valid text in its declared encoding")
    try:
        page = await asyncio.to_thread(page_markdown, html)
    except DocumentError as exc:
        return SkippedDocument(doc, str(exc))
    return SourceDocument(doc=doc, text=page.markdown, page_url=url, title=page.title or None)


def _charset(content_type: str) -> str | None:
    match = re.search(r"charset=([\w\-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None
