"""The book widget in a real browser: a page of "the book" on another origin loads /widget.js with one
script tag; selecting a passage offers "Ask about this", which sends it as ``selected_text``."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Page, WebSocket, expect
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from fake_cohere.testing import serve_asgi
from tests.browser.conftest import PHONE, final_answer, screenshot, stored_turns
from tests.conftest import SettingsFactory
from tests.stack import running_stack

PASSAGE = (
    "The Unified Robot Description Format (URDF) is an XML format that describes a robot as a tree of "
    "links connected by joints."
)
BOOK_PAGE = """<!doctype html>
<html lang="en" data-theme="light">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
  <title>Describing a Robot with URDF and TF</title>
  <style>
    body {{ font: 17px/1.65 Georgia, serif; max-width: 680px; margin: 0 auto; padding: 32px 20px; color: #222; }}
    h1 {{ font-size: 30px; }}
  </style>
  <script src="{tutor}/widget.js" data-tutor-url="{tutor}" defer></script>
</head>
<body>
  <h1>Describing a Robot with URDF and TF</h1>
  <p>Before a robot can plan a step or reach for a cup, its software needs a precise model of its body.</p>
  <h2>What does a URDF describe?</h2>
  <p id="passage">{passage}</p>
  <p>Because every link except the root has exactly one parent, a URDF always describes a tree.</p>
</body>
</html>
"""


@asynccontextmanager
async def book_site() -> AsyncIterator[tuple[str, Starlette]]:
    """A page of the book on an origin of its own; it names the tutor once the tutor is running."""

    async def chapter(request: Request) -> HTMLResponse:
        tutor = request.app.state.tutor_url
        return HTMLResponse(BOOK_PAGE.format(tutor=tutor, passage=PASSAGE))

    app = Starlette(routes=[Route("/docs/ros2/robot-description", chapter)])
    async with serve_asgi(app) as origin:
        yield origin, app


async def test_the_widget_asks_about_a_selected_passage(
    make_settings: SettingsFactory, redis: Redis, page: Page
) -> None:
    sent: list[dict[str, Any]] = []

    def watch(socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", watch)
    async with book_site() as (book, app), running_stack(make_settings(allowed_origins=[book])) as tutor:
        app.state.tutor_url = tutor
        await page.goto(f"{book}/docs/ros2/robot-description")
        launcher = page.get_by_role("button", name="Ask the tutor")
        await expect(launcher).to_be_visible()
        await expect(page.get_by_role("dialog")).to_be_hidden()

        await page.locator("#passage").click(click_count=3)  # a reader selects the paragraph
        ask_about = page.get_by_role("button", name="Ask about this")
        await expect(ask_about).to_be_visible()
        await screenshot(page, "widget-1-selection")
        await ask_about.click()

        panel = page.get_by_role("dialog", name="Ask the book")
        await expect(panel).to_be_visible()
        await expect(panel.locator(".attachment-text")).to_have_text(PASSAGE)
        question = panel.get_by_label("Your question")
        await expect(question).to_be_focused()
        await page.keyboard.type("What is it made of?")
        await page.keyboard.press("Enter")

        turn = panel.locator(".turn").last
        await expect(turn).to_have_attribute("data-status", "done")
        await expect(turn.locator(".question-passage")).to_have_text(PASSAGE)
        await screenshot(page, "widget-2-answer")
        sources = turn.get_by_text(re.compile(r"^Sources \(\d+\)$"))
        await expect(sources).to_be_visible()  # folded in the small panel, one click away
        await expect(turn.locator(".source").first).to_be_hidden()
        await sources.click()
        await expect(turn.locator(".source").first).to_contain_text("Your selected passage")
        [ask] = [frame for frame in sent if frame["type"] == "ask"]
        assert ask["selected_text"] == PASSAGE and ask["question"] == "What is it made of?"
        [saved] = await stored_turns(page, "physical-ai-tutor:widget")
        assert saved["text"] == await final_answer(redis, saved["turnId"])
        book_links = turn.locator(".source a")
        await expect(book_links.first).to_have_attribute(
            "href", f"{book}/docs/ros2/robot-description#what-does-a-urdf-describe"
        )
        await expect(book_links.first).not_to_have_attribute("target", "_blank")  # the book stays in its tab
        await screenshot(page, "widget-3-sources")

        # Keyboard: Escape closes the panel and gives focus back to the button, Enter opens it again.
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        await expect(launcher).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(panel).to_be_visible()
        await expect(question).to_be_focused()

        await page.set_viewport_size(PHONE)
        box = await panel.bounding_box()
        assert box is not None and box["width"] == PHONE["width"], "on a phone the panel takes the whole screen"
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        await screenshot(page, "widget-4-phone")


async def test_the_widget_follows_the_books_dark_theme(make_settings: SettingsFactory, page: Page) -> None:
    async with book_site() as (book, app), running_stack(make_settings(allowed_origins=[book])) as tutor:
        app.state.tutor_url = tutor
        await page.goto(f"{book}/docs/ros2/robot-description")
        launcher = page.get_by_role("button", name="Ask the tutor")
        await launcher.click()
        light = await launcher.evaluate("b => getComputedStyle(b.closest('.tutor-widget')).getPropertyValue('--bg')")
        await page.evaluate("document.documentElement.dataset.theme = 'dark'")
        await expect(page.locator(".tutor-widget")).to_have_class("tutor-widget tutor-theme dark")
        dark = await launcher.evaluate("b => getComputedStyle(b.closest('.tutor-widget')).getPropertyValue('--bg')")
        assert light != dark
        await page.evaluate("document.body.style.cssText = 'background: #1b1b1d; color: #e3e3e3'")
        await screenshot(page, "widget-5-dark")
