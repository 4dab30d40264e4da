"""Where the book comes from: a folder of Markdown/MDX, or a deployed Docusaurus site by its ``sitemap.xml``.

Both give the same thing, a list of ``SourceDocument`` (a doc's path relative to the source's root, its
Markdown, where it is published) and the documents that could not be used, each with a reason. A bad
document never stops the others; only a source that cannot be read at all (a missing folder, a sitemap
that answers 404 or times out) raises ``SourceError``.

A sitemap's pages are fetched with a bounded number of concurrent requests, each with a timeout and a size
limit, through ``SiteFetcher`` (worker/knowledge/site_fetch.py: the sitemap's host only, redirects checked).
Only pages on the book's host and under its path (``BOOK_BASE_URL``) are the book; the rest of the site
(home page, blog, search, tag lists) is skipped, each with the reason that names the mismatch.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from worker.knowledge.documents import DocumentError
from worker.knowledge.markdown_chunks import MAX_FILE_BYTES, markdown_files, read_markdown_file
from worker.knowledge.site_fetch import FetchError, Resolver, SiteFetcher, netloc, new_http_client, origin

if TYPE_CHECKING:
    from worker.knowledge.html_pages import PageContent

SITEMAP_TIMEOUT_S = 10.0
PAGE_TIMEOUT_S = 10.0
FETCH_CONCURRENCY = 4
MAX_PAGES = 5000
MAX_SITEMAPS = 20
MAX_SITEMAP_BYTES = 10_000_000
MAX_PAGE_BYTES = MAX_FILE_BYTES

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
    outside: bool = False  # not a document of the book (another part of the site, or a sitemap file)
    fix: str | None = None  # what to change, when the reason is a setting's mismatch


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
    resolver: Resolver | None = None,
) -> LoadedSource:
    """Read every document of ``source`` (a folder path or a sitemap URL)."""
    if is_sitemap(source):
        if client is not None:
            return await load_sitemap(source, base_url, client, on_progress=on_progress, resolver=resolver)
        async with new_http_client(FETCH_CONCURRENCY, PAGE_TIMEOUT_S) as owned:
            return await load_sitemap(source, base_url, owned, on_progress=on_progress, resolver=resolver)
    return await asyncio.to_thread(load_folder, Path(source), on_progress)


# --------------------------------------------------------------------------------------------------
# A folder


def load_folder(source: Path, on_progress: ProgressCallback | None = None) -> LoadedSource:
    """Every Markdown file under ``source``. A symlink is read only when it points inside the folder (a link
    to ``/etc/passwd`` named ``passwd.md`` would otherwise be indexed and quoted); linked folders are not
    entered."""
    if not source.is_dir():
        raise SourceError("the book source is not a folder; give a folder of Markdown or a sitemap.xml URL")
    root = source.resolve()
    loaded = LoadedSource(source=str(source), kind="folder")
    files = list(markdown_files(source))
    for done, (path, doc) in enumerate(files, start=1):
        real = path.resolve()
        if any(part.startswith("_") for part in PurePosixPath(doc).parts):
            loaded.skipped.append(SkippedDocument(doc, "partial (a name starting with '_' is not a page)"))
        elif not real.is_relative_to(root):
            loaded.skipped.append(SkippedDocument(doc, "a symlink to a file outside the book's folder (not read)"))
        else:
            try:
                loaded.documents.append(SourceDocument(doc, read_markdown_file(real)))
            except DocumentError as exc:
                loaded.skipped.append(SkippedDocument(doc, str(exc)))
        if on_progress is not None:
            on_progress(done, len(files))
    return loaded


# --------------------------------------------------------------------------------------------------
# A sitemap


async def load_sitemap(
    sitemap_url: str,
    base_url: str,
    client: httpx.AsyncClient,
    *,
    on_progress: ProgressCallback | None = None,
    resolver: Resolver | None = None,
) -> LoadedSource:
    loaded = LoadedSource(source=sitemap_url, kind="sitemap")
    try:
        site = await SiteFetcher.open(client, sitemap_url, resolver)
    except FetchError as exc:
        _sitemap_failed(sitemap_url, exc)
    pages = await _page_urls(site, sitemap_url, loaded)
    book = _BookRoot.of(sitemap_url, base_url)
    wanted: list[tuple[str, str]] = []
    seen: set[str] = set()
    for url in pages:
        doc = book.doc(url)
        refusal = book.refusal(url) or _off_site(site, url)
        if refusal is not None:
            loaded.skipped.append(SkippedDocument(url, refusal[0], outside=True, fix=refusal[1]))
        elif doc in seen:
            loaded.skipped.append(SkippedDocument(url, f"duplicate of {doc}"))
        else:
            seen.add(doc)
            wanted.append((url, doc))
    if len(wanted) > MAX_PAGES:
        for url, _ in wanted[MAX_PAGES:]:
            loaded.skipped.append(SkippedDocument(url, f"over the limit of {MAX_PAGES} pages"))
        wanted = wanted[:MAX_PAGES]

    # The page converter's first import (BeautifulSoup, lxml.html) holds the GIL for a while: done before any
    # page's fetch timer runs, so that it cannot starve the loop into timing a page out.
    await asyncio.to_thread(importlib.import_module, "worker.knowledge.html_pages")
    semaphore = asyncio.Semaphore(FETCH_CONCURRENCY)
    done = 0
    results: list[SourceDocument | SkippedDocument | None] = [None] * len(wanted)

    async def fetch(index: int, url: str, doc: str) -> None:
        nonlocal done
        async with semaphore:
            results[index] = await _fetch_page(site, book, url, doc)
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
    """Where the book lives on the site: BOOK_BASE_URL resolved against the sitemap's address."""

    scheme: str
    netloc: str
    path: str  # always ends with '/'
    named_host: bool  # BOOK_BASE_URL names a host itself (else it is the sitemap's)

    @classmethod
    def of(cls, sitemap_url: str, base_url: str) -> _BookRoot:
        absolute = urlsplit(urljoin(sitemap_url, base_url or "/"))
        path = absolute.path if absolute.path.endswith("/") else absolute.path + "/"
        return cls(absolute.scheme, netloc(*origin(absolute.geturl())), path, bool(urlsplit(base_url).netloc))

    def refusal(self, url: str) -> tuple[str, str] | None:
        """Why the page at ``url`` is not part of the book and what would make it so; None when it is."""
        page = netloc(*origin(url))
        if page != self.netloc and self.named_host:
            return (
                f"host {page} is not BOOK_BASE_URL's host {self.netloc}",
                f"set BOOK_BASE_URL to the book's path alone (like {self.path.rstrip('/') or '/'}) or on host {page}",
            )
        if page != self.netloc:
            return (
                f"host {page} is not the sitemap's host {self.netloc} (BOOK_BASE_URL is a path)",
                f"read the sitemap from host {page}, or build the site with its url set to where it is served",
            )
        if not _folder_path(url).startswith(self.path):
            return (
                f"outside the book (not under BOOK_BASE_URL's path {self.path})",
                "set BOOK_BASE_URL to the path the book's pages are published under",
            )
        return None

    def redirect_rule(self, url: str) -> str | None:
        refusal = self.refusal(url)
        return refusal[0] if refusal is not None else None

    def doc(self, url: str) -> str:
        """A page's doc: its path under the book's, without ``.html``."""
        relative = _folder_path(url)[len(self.path) :].strip("/")
        for suffix in (".html", ".htm"):
            relative = relative.removesuffix(suffix)
        return relative or "index"


def _off_site(site: SiteFetcher, url: str) -> tuple[str, str] | None:
    why = site.off_site(url)
    page = netloc(*origin(url))
    return None if why is None else (why, f"read the sitemap from the pages' host {page}")


def _folder_path(url: str) -> str:
    return posixpath.normpath(urlsplit(url).path or "/").rstrip("/") + "/"


def _sitemap_failed(sitemap_url: str, exc: FetchError | ValueError) -> NoReturn:
    reason = exc.reason if isinstance(exc, FetchError) else str(exc)
    transient = isinstance(exc, FetchError) and exc.transient
    fix = "give the site's sitemap.xml"
    if isinstance(exc, FetchError):
        fix = "check its address and that the site answers"
    skipped = SkippedDocument(sitemap_url, f"sitemap: {reason}", transient=transient, outside=True, fix=fix)
    raise SourceError(f"cannot read the sitemap: {reason}; {fix}", [skipped]) from None


async def _page_urls(site: SiteFetcher, sitemap_url: str, loaded: LoadedSource) -> list[str]:
    """Page URLs of a sitemap, following a sitemap index one level down (at most ``MAX_SITEMAPS`` files,
    each on the sitemap's own host)."""
    try:
        fetched = await site.get(sitemap_url, limit=MAX_SITEMAP_BYTES, seconds=SITEMAP_TIMEOUT_S)
        kind, locations = parse_sitemap(fetched.body)
    except (FetchError, ValueError) as exc:
        _sitemap_failed(sitemap_url, exc)
    if kind == "urlset":
        return _unique(locations)
    pages: list[str] = []
    for nested in locations[:MAX_SITEMAPS]:
        off_site = site.off_site(nested)
        if off_site is not None:
            loaded.skipped.append(SkippedDocument(nested, f"sitemap: {off_site} (refused)", outside=True))
            continue
        try:
            fetched = await site.get(nested, limit=MAX_SITEMAP_BYTES, seconds=SITEMAP_TIMEOUT_S)
            nested_kind, nested_locations = parse_sitemap(fetched.body)
        except FetchError as exc:
            loaded.skipped.append(
                SkippedDocument(nested, f"sitemap: {exc.reason}", transient=exc.transient, outside=True)
            )
            continue
        except ValueError as exc:
            loaded.skipped.append(SkippedDocument(nested, f"sitemap: {exc}", outside=True))
            continue
        if nested_kind != "urlset":
            loaded.skipped.append(
                SkippedDocument(nested, "sitemap: nested sitemap index (only one level followed)", outside=True)
            )
            continue
        pages.extend(nested_locations)
    for nested in locations[MAX_SITEMAPS:]:
        loaded.skipped.append(
            SkippedDocument(nested, f"sitemap: over the limit of {MAX_SITEMAPS} sitemaps", outside=True)
        )
    return _unique(pages)


def _unique(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


def parse_sitemap(body: bytes) -> tuple[str, list[str]]:
    """("urlset" | "sitemapindex", the ``<loc>`` URLs); ``ValueError`` for anything else.

    A sitemap has no business declaring a DTD or entities, so a document that does is refused before
    parsing; lxml then parses it with entities, DTDs and the network off. Strictly: a sitemap cut short
    must fail as a whole, or an incremental re-index would take its missing pages for deleted ones."""
    from lxml import etree  # here, not at the top: a worker reading the book from a folder never needs it

    head = body[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in body.lower():
        raise ValueError("not a sitemap (declares a DTD or entities)")
    parser = etree.XMLParser(
        resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, recover=False, remove_comments=True
    )
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not valid XML (line {exc.lineno})") from None
    if root is None:
        raise ValueError("not valid XML (no element)")
    kind = _SITEMAP_NS.sub("", str(root.tag))
    if kind not in {"urlset", "sitemapindex"}:
        raise ValueError("not a sitemap (the root element is neither <urlset> nor <sitemapindex>)")
    child = "url" if kind == "urlset" else "sitemap"
    locations: list[str] = []
    for entry in root:
        if _SITEMAP_NS.sub("", str(entry.tag)) != child:
            continue
        for item in entry:
            if _SITEMAP_NS.sub("", str(item.tag)) == "loc" and item.text and item.text.strip():
                url = item.text.strip()
                if url.lower().startswith(("http://", "https://")):
                    locations.append(_without_fragment(url))
    return kind, locations


def _without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


async def _fetch_page(site: SiteFetcher, book: _BookRoot, url: str, doc: str) -> SourceDocument | SkippedDocument:
    try:
        fetched = await site.get(url, limit=MAX_PAGE_BYTES, seconds=PAGE_TIMEOUT_S, rule=book.redirect_rule)
    except FetchError as exc:
        return SkippedDocument(doc, exc.reason, transient=exc.transient)
    content_type = fetched.content_type
    if content_type and "html" not in content_type.lower():
        return SkippedDocument(doc, "not an HTML page (its Content-Type is not HTML)")
    body = fetched.body
    if b"\x00" in body[:8192]:
        return SkippedDocument(doc, "binary content (contains NUL bytes)")
    try:
        html = body.decode(_charset(content_type) or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return SkippedDocument(doc, "not valid text in its declared encoding")
    try:
        page = await asyncio.to_thread(_page_markdown, html)
    except DocumentError as exc:
        return SkippedDocument(doc, str(exc))
    return SourceDocument(doc=doc, text=page.markdown, page_url=fetched.url, title=page.title or None)


def _page_markdown(html: str) -> PageContent:
    """``page_markdown``, imported on first use (in the converting thread): only a book read from a site
    needs BeautifulSoup, and a worker reading a folder never loads it."""
    from worker.knowledge.html_pages import page_markdown

    return page_markdown(html)


def _charset(content_type: str) -> str | None:
    match = re.search(r"charset=([\w\-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None
