"""The sample book as Docusaurus 3 really builds it (tests/fixtures/docusaurus, Docusaurus Faster on: minified
HTML without optional end tags), read through its sitemap from 127.0.0.1, gives the passages its Markdown
folder gives: tables, admonitions, tabs and code blocks included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fake_cohere.testing import serve_asgi
from tests.factories import REPO, SAMPLE_BOOK, knowledge_settings
from worker.knowledge.documents import Chunk
from worker.knowledge.html_pages import page_markdown
from worker.knowledge.indexing import IndexBuild
from worker.knowledge.markdown_chunks import chunk_book, chunk_document
from worker.knowledge.sources import load_source
from worker.knowledge.store import KnowledgeStore

BUILD = REPO / "tests" / "fixtures" / "docusaurus"
# The origin book/site/docusaurus.config.js builds the sitemap's URLs with.
BUILD_ORIGIN = b"http://127.0.0.1:8000"
# One page with tabs, a <details>, a titled admonition, nested lists and an aligned table, built the same
# way (create-docusaurus@3.10.2 classic, Faster on) from tabs.mdx next to it.
TABS = REPO / "tests" / "fixtures" / "docusaurus-tabs"


@pytest.fixture
async def served_build() -> AsyncIterator[str]:
    """The build as a static host serves it (``/docs/vla`` is ``docs/vla/index.html``), its sitemap naming
    the address it is served from."""
    root = BUILD.resolve()

    async def serve(request: Request) -> Response:
        origin = str(request.base_url).rstrip("/")
        candidate = (root / request.url.path.strip("/")).resolve()
        if candidate.is_dir():
            candidate = candidate / "index.html"
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return Response((root / "404.html").read_bytes(), 404, media_type="text/html")
        if candidate.name == "sitemap.xml":
            return Response(candidate.read_bytes().replace(BUILD_ORIGIN, origin.encode()), media_type="application/xml")
        return Response(candidate.read_bytes(), media_type="text/html; charset=utf-8")

    async with serve_asgi(Starlette(routes=[Route("/{path:path}", serve)])) as url:
        yield url


def passages(chunks: list[Chunk]) -> list[tuple[str, str]]:
    return sorted((c.heading, " ".join(c.text.split())) for c in chunks)


def anchors(chunks: list[Chunk]) -> list[str]:
    return sorted(c.url.partition("#")[2] for c in chunks)


async def test_the_built_site_gives_the_folders_passages(served_build: str) -> None:
    loaded = await load_source(f"{served_build}/sitemap.xml", "/docs")
    from_site = [
        c for d in loaded.documents for c in chunk_document(d.text, d.doc, "/docs", page_url=d.page_url, title=d.title)
    ]
    from_folder = chunk_book(SAMPLE_BOOK, "/docs").chunks
    assert len(loaded.documents) == 6
    assert [(s.doc.removeprefix(served_build), s.reason) for s in loaded.skipped] == [
        ("/", "outside the book (not under BOOK_BASE_URL's path /docs/)")
    ]
    # the same passages, word for word, under the same headings and anchors
    assert passages(from_site) == passages(from_folder)
    assert anchors(from_site) == anchors(from_folder)
    text = "\n\n".join(c.text for c in from_site)
    # each kind of block as the folder has it: a table (cells without end tags in the build), an
    # admonition, code with its language
    assert "| Licence | Open source (Apache 2.0) | Free; recent releases published as open source |" in text
    assert text.count("| Licence |") == 1
    assert "Warning: " in text and "Tip (Grounding): " in text
    assert "```bash\n# start a world, then bridge the clock and a lidar topic into ROS 2\ngz sim -r empty.sdf" in text


async def test_indexing_the_build_matches_indexing_the_folder(served_build: str, tmp_path: Path) -> None:
    store = await KnowledgeStore.open(knowledge_settings(tmp_path))
    try:
        from_folder = await IndexBuild(store, source=str(SAMPLE_BOOK), base_url="/docs", embedder=None).run()
        from_site = await IndexBuild(store, source=f"{served_build}/sitemap.xml", base_url="/docs", embedder=None).run()
        (passage,) = await store.search("How does Isaac Sim compare with Gazebo on hardware?", None, 1)
    finally:
        await store.close()
    assert (from_site.documents, from_site.chunks) == (from_folder.documents, from_folder.chunks) == (6, 41)
    assert passage.url == f"{served_build}/docs/simulation-and-control/gazebo-and-isaac#nvidia-isaac-sim"
    assert "| Hardware | Runs on modest hardware, any GPU | Needs a recent NVIDIA RTX GPU |" in passage.text


def test_tabs_details_and_titled_admonitions_read_as_their_source() -> None:
    page = page_markdown((TABS / "tabs.html").read_text(encoding="utf-8"))
    from_site = chunk_document(page.markdown, "extras/tabs", "/docs", page_url="/docs/extras/tabs", title=page.title)
    from_source = chunk_document((TABS / "tabs.mdx").read_text(encoding="utf-8"), "extras/tabs", "/docs")
    assert passages(from_site) == passages(from_source)
    text = "\n\n".join(c.text for c in from_site)
    # both tabs' panels (the hidden one too), without the tab labels, as the folder reads <Tabs>
    assert "Use apt to install the packages:\n\n```bash\nsudo apt install ros-humble-desktop\n```" in text
    assert "Build from source with colcon." in text and "Ubuntu" not in text
    assert "Info (Custom title): An info box with a custom title." in text
    assert "2. Second step\n   - nested a\n   - nested b\n3. Third step" in text
    assert "| a `x` | b |" in text
