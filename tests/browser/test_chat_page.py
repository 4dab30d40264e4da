"""The chat page at / in a real browser against the real stack: streaming with sources and citations,
stop, a dropped connection, reloads, and a phone's width."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.async_api import Locator, Page, WebSocket, WebSocketRoute, expect
from redis.asyncio import Redis

from fake_cohere.testing import RunningFake
from tests.browser.conftest import PHONE, SOCKET, ask, final_answer, screenshot, stored_turns, turn_events
from tests.conftest import SettingsFactory
from tests.stack import running_stack
from worker.turns.reader_language import LINES

SOME_WORDS = re.compile(r"\w+\W+\w+\W+\w+")


async def turn_id_of(turn: Locator) -> str:
    await expect(turn).not_to_have_attribute("data-turn-id", "")
    turn_id = await turn.get_attribute("data-turn-id")
    assert turn_id
    return turn_id


async def rendered_text(turn: Locator) -> str:
    """The answer as the reader sees it, without the citation numbers."""
    text: str = await turn.locator(".answer-body").evaluate(
        "body => { const copy = body.cloneNode(true); copy.querySelectorAll('.refs').forEach(r => r.remove());"
        " return copy.textContent; }"
    )
    return " ".join(text.split())


def as_plain_text(markdown: str) -> str:
    """What the reader sees of an answer: its words without Markdown's emphasis, list and heading marks."""
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)]|#{1,6})\s+", "", markdown, flags=re.M)
    # an underscore inside a word ("/tf_static") is a letter, not emphasis
    return " ".join(re.sub(r"[*`]|(?<!\w)_|_(?!\w)", "", text).split())


async def assert_complete_and_exact(page: Page, turn: Locator, redis: Redis) -> None:
    """The page holds exactly the answer the server finished with: no gap, no repeat."""
    await expect(turn).to_have_attribute("data-status", "done")
    turn_id = await turn_id_of(turn)
    answer = await final_answer(redis, turn_id)
    [saved] = [t for t in await stored_turns(page) if t["turnId"] == turn_id]
    assert saved["text"] == answer, "the deltas the page applied concatenate to the final answer"
    assert not saved.get("repaired"), "the page did not need the final answer to fill a gap"
    assert await rendered_text(turn) == as_plain_text(answer)


async def test_a_question_streams_an_answer_with_sources_and_citations(
    make_settings: SettingsFactory, redis: Redis, page: Page
) -> None:
    async with running_stack(make_settings()) as url:
        await page.goto(url)
        await expect(page.get_by_text("Ask anything about the book.")).to_be_visible()
        await screenshot(page, "page-1-empty")
        await expect(page.get_by_label("Your question")).to_be_focused()
        await page.keyboard.type("What does a URDF describe?")
        await page.keyboard.press("Enter")
        turn = page.locator(".turn").last
        await expect(turn.locator(".question-text")).to_have_text("What does a URDF describe?")
        await assert_complete_and_exact(page, turn, redis)

        sources = turn.locator(".source a")
        assert await sources.count() >= 1
        first_href = await sources.first.get_attribute("href")
        assert first_href and "/docs/" in first_href
        await expect(sources.first).to_contain_text("URDF")
        events = await turn_events(redis, await turn_id_of(turn))
        citations = [e for e in events if e["type"] == "citation"]
        assert citations, "offline answers cite every sentence"
        await expect(turn.locator("mark.cited")).to_have_count(len(citations))
        await expect(turn.locator("mark.cited").first).to_have_text(citations[0]["text"])
        await expect(turn.locator(".refs a").first).to_have_attribute("href", re.compile("/docs/"))
        await expect(turn.locator(".turn-note")).to_have_text(re.compile("Offline mode: quoted from the book"))
        await expect(turn.locator(".answer-body")).to_have_attribute("aria-live", "polite")
        await expect(turn.locator(".answer-body")).to_have_attribute("aria-busy", "false")
        await screenshot(page, "page-2-answer")

        await page.set_viewport_size(PHONE)
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth"), "no sideways scrolling"
        await expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
        await screenshot(page, "page-3-answer-phone")


async def test_stop_ends_the_answer_as_cancelled(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis, page: Page
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=15)
    async with running_stack(cohere_settings()) as url:
        await page.goto(url)
        turn = await ask(page, "What is sim-to-real transfer?")
        await expect(turn.locator(".answer-body")).to_have_text(SOME_WORDS)
        await expect(turn.locator(".answer-body")).to_have_attribute("aria-busy", "true")
        stop = page.get_by_role("button", name="Stop the answer")
        await expect(page.get_by_role("button", name="Send")).to_be_hidden()
        await screenshot(page, "page-4-streaming")
        await stop.focus()
        await page.keyboard.press("Enter")

        await expect(turn).to_have_attribute("data-status", "failed")
        await expect(turn.locator(".turn-note")).to_have_text("Stopped.")
        await expect(page.get_by_role("button", name="Send")).to_be_visible()
        await expect(page.get_by_label("Your question")).to_be_focused()
        events = await turn_events(redis, await turn_id_of(turn))
        assert events[-1]["type"] == "error" and events[-1]["code"] == "cancelled"
        assert not [e for e in events if e["type"] == "done"]
        [saved] = await stored_turns(page)
        assert saved["text"] == "".join(e["text"] for e in events if e["type"] == "delta")
        assert saved["text"], "the part already written stays on the page"
        await screenshot(page, "page-5-stopped")


class SocketTap:
    """Routes the page's sockets through Playwright to the real server, recording both directions, so a
    test can cut a connection the way a network drop does."""

    def __init__(self) -> None:
        self.routes: list[WebSocketRoute] = []
        self.servers: list[WebSocketRoute] = []
        self.sent: list[list[dict[str, Any]]] = []

    def __call__(self, page_side: WebSocketRoute) -> None:
        server = page_side.connect_to_server()
        sent: list[dict[str, Any]] = []

        def forward_up(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server.send(message)

        page_side.on_message(forward_up)
        server.on_message(page_side.send)
        self.routes.append(page_side)
        self.servers.append(server)
        self.sent.append(sent)

    async def drop(self) -> None:
        await self.servers[-1].close(code=1001, reason="network drop")
        await self.routes[-1].close(code=1001, reason="network drop")


async def test_a_dropped_connection_resumes_without_gaps_or_repeats(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis, page: Page
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=15)
    tap = SocketTap()
    await page.route_web_socket(SOCKET, tap)
    async with running_stack(cohere_settings()) as url:
        await page.goto(url)
        turn = await ask(page, "How does a humanoid robot keep its balance?")
        turn_id = await turn_id_of(turn)
        await expect(turn.locator(".answer-body")).to_have_text(SOME_WORDS)
        await tap.drop()

        await assert_complete_and_exact(page, turn, redis)
        assert len(tap.routes) == 2, "the page reconnected once"
        hello, resume = tap.sent[1][:2]
        assert hello["type"] == "hello", "every socket says hello first"
        assert resume["type"] == "resume" and resume["turn_id"] == turn_id
        seen_before_drop = [e["id"] for e in await turn_events(redis, turn_id)]
        assert resume["after"] in seen_before_drop
        await expect(page.locator(".connection-note")).to_be_hidden()


async def test_going_offline_and_back_finishes_the_answer(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis, page: Page
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=15)
    async with running_stack(cohere_settings()) as url:
        await page.goto(url)
        turn = await ask(page, "What is a ROS 2 topic?")
        await expect(turn.locator(".answer-body")).to_have_text(SOME_WORDS)
        await page.context.set_offline(True)
        await expect(page.locator(".connection-note")).to_have_text(re.compile("You are offline"))
        await screenshot(page, "page-6-offline")
        await page.context.set_offline(False)
        await assert_complete_and_exact(page, turn, redis)
        await expect(page.locator(".connection-note")).to_be_hidden()


async def test_a_reload_keeps_the_conversation(make_settings: SettingsFactory, redis: Redis, page: Page) -> None:
    sent: list[dict[str, Any]] = []

    def watch(socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", watch)
    async with running_stack(make_settings()) as url:
        await page.goto(url)
        first = await ask(page, "What does a URDF describe?")
        await assert_complete_and_exact(page, first, redis)
        answer_before = await rendered_text(first)
        sources_before = await first.locator(".source").count()

        await page.reload()
        first = page.locator(".turn").first
        await expect(first.locator(".question-text")).to_have_text("What does a URDF describe?")
        assert await rendered_text(first) == answer_before
        await expect(first.locator(".source")).to_have_count(sources_before)
        await expect(page.get_by_text("Ask anything about the book.")).to_be_hidden()

        second = await ask(page, "And what does TF track?")
        await assert_complete_and_exact(page, second, redis)
        asks = [frame for frame in sent if frame["type"] == "ask"]
        assert len(asks) == 2 and asks[0]["conversation_id"] == asks[1]["conversation_id"]
        accepted = [e for e in await turn_events(redis, await turn_id_of(second)) if e["type"] == "accepted"]
        assert accepted[0]["conversation_id"] == asks[0]["conversation_id"]
        await screenshot(page, "page-7-after-reload", full_page=True)

        await page.get_by_role("button", name="New conversation").click()
        await expect(page.locator(".turn")).to_have_count(0)
        await page.reload()
        await expect(page.get_by_text("Ask anything about the book.")).to_be_visible()


async def test_a_reload_while_streaming_resumes_the_answer(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis, page: Page
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=15)
    async with running_stack(cohere_settings()) as url:
        await page.goto(url)
        turn = await ask(page, "What is a vision-language-action model?")
        await expect(turn.locator(".answer-body")).to_have_text(SOME_WORDS)
        await page.reload()
        await assert_complete_and_exact(page, page.locator(".turn").first, redis)


URDU_QUESTION = "ہیومنائڈ روبوٹ اپنا توازن کیسے برقرار رکھتا ہے؟"  # How does a humanoid robot keep its balance?


async def test_a_question_in_urdu_reads_right_to_left(make_settings: SettingsFactory, redis: Redis, page: Page) -> None:
    async with running_stack(make_settings()) as url:
        await page.goto(url)
        question = page.get_by_label("Your question")
        await question.fill(URDU_QUESTION)
        assert await question.evaluate("q => q.matches(':dir(rtl)')"), "typed Urdu reads right to left"
        await question.press("Enter")
        turn = page.locator(".turn").last
        await expect(turn.locator(".question-text")).to_have_text(URDU_QUESTION)
        await expect(turn).to_have_attribute("data-status", "done")
        assert await turn.locator(".question-text").evaluate("p => p.matches(':dir(rtl)')")
        assert await turn.locator(".question-text").evaluate("p => getComputedStyle(p).direction") == "rtl"
        # Offline, the English book cannot be searched in Urdu: the tutor says so in Urdu, right to left.
        answer = await final_answer(redis, await turn_id_of(turn))
        assert answer == LINES["ur"]["not_in_book"]
        assert await turn.locator(".answer-body").evaluate("b => b.matches(':dir(rtl)')")
        await expect(question).to_have_value("")
        assert await question.evaluate("q => q.matches(':dir(ltr)')"), "empty again, it waits in the page's direction"
        await screenshot(page, "page-12-urdu")
