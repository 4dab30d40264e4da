"""A real browser for the page and widget tests: Debian's chromium, driven by Playwright in the test's own
event loop (the service runs there too, see tests/stack.py). Never a downloaded browser."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Locator, Page, async_playwright, expect
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fake_cohere.testing import serve_asgi
from shared import keys

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
SOCKET = re.compile(r"/ws/chat$")

# Assertions wait for the page (answers stream for seconds); the default 5 s is too short on a busy machine.
expect.set_options(timeout=30_000)


@dataclass
class BrowserLog:
    """What the page said: console errors and uncaught exceptions fail the test that produced them."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        # A refused socket handshake is the browser reporting the network (the service stopping at the end
        # of a test, say), not the page misbehaving; the page's answer to it is what tests check.
        if message.type in {"error", "warning"} and not message.text.startswith("WebSocket connection to"):
            self.errors.append(f"console {message.type}: {message.text}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        raise RuntimeError("chromium is not installed: run the tests through `make test`")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh headless chromium (its own user-data-dir) with one desktop-sized page."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 760},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
async def page(browser: BrowserContext) -> AsyncIterator[Page]:
    log = BrowserLog()
    page = browser.pages[0] if browser.pages else await browser.new_page()
    log.watch(page)
    yield page
    assert not log.errors, "\n".join(log.errors)


async def ask(page: Page, question: str) -> Locator:
    """Types the question and presses Enter, like a reader; returns the new turn."""
    before = await page.locator(".turn").count()
    await page.get_by_label("Your question").fill(question)
    await page.get_by_label("Your question").press("Enter")
    await expect(page.locator(".turn")).to_have_count(before + 1)
    return page.locator(".turn").nth(before)


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=full_page, animations="disabled")


async def turn_events(redis: Redis, turn_id: str) -> list[dict[str, Any]]:
    """The turn as the server recorded it (its Redis stream), each event with its stream id."""
    entries = await redis.xrange(keys.turn_events(turn_id))
    return [{"id": entry_id.decode(), **json.loads(fields[b"e"])} for entry_id, fields in entries]


async def final_answer(redis: Redis, turn_id: str) -> str:
    done = [e for e in await turn_events(redis, turn_id) if e["type"] == "done"]
    assert len(done) == 1, "the turn ended in exactly one done"
    return str(done[0]["answer"])


async def stored_turns(page: Page, key: str = "physical-ai-tutor:page") -> list[dict[str, Any]]:
    """The conversation the page keeps in localStorage (what survives a reload)."""
    saved = await page.evaluate("key => localStorage.getItem(key)", key)
    assert saved, "the page saved its conversation"
    turns: list[dict[str, Any]] = json.loads(saved)["turns"]
    return turns


DOCUSAURUS_BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "docusaurus"
# The tutor's address as the build's `scripts` entry names it (book/site/docusaurus.config.js).
BUILD_TUTOR_URL = b"http://tutor.invalid"
_BUILD_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}


@dataclass
class DocusaurusBook:
    """The sample book's real Docusaurus build, served on 127.0.0.1 with its widget tag naming the tutor."""

    url: str
    tutor_url: str = ""


@asynccontextmanager
async def docusaurus_book() -> AsyncIterator[DocusaurusBook]:
    """Serves tests/fixtures/docusaurus as a static host would: ``/docs/vla`` is ``docs/vla/index.html``.

    Set ``tutor_url`` before a page is loaded: the widget's tag then loads the tutor from there.
    """
    root = DOCUSAURUS_BUILD.resolve()

    async def serve(request: Request) -> Response:
        path = request.url.path.strip("/")
        candidate = (root / path).resolve()
        if candidate.is_dir():
            candidate = candidate / "index.html"
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return Response((root / "404.html").read_bytes(), 404, media_type=_BUILD_TYPES[".html"])
        body = candidate.read_bytes()
        if candidate.suffix == ".html":
            body = body.replace(BUILD_TUTOR_URL, book.tutor_url.encode())
        return Response(body, media_type=_BUILD_TYPES.get(candidate.suffix, "application/octet-stream"))

    async with serve_asgi(Starlette(routes=[Route("/{path:path}", serve)])) as origin:
        book = DocusaurusBook(origin)
        yield book
