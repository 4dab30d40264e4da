"""The reader's history in a real browser against the real stack (SQLite under the test's DATA_DIR): the
conversation list on the page (a drawer on a phone) and in the widget, reopening and continuing a
conversation, ratings with a reason and comment, deleting one conversation or everything."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from playwright.async_api import Locator, Page, WebSocket, expect

from fake_cohere.testing import RunningFake
from tests.browser.conftest import PHONE, ask, docusaurus_book, screenshot
from tests.conftest import SettingsFactory
from tests.sign_in_keys import AUDIENCE, ISSUER, SigningKey, jwks_server
from tests.stack import history_written, stack_with_worker

TOKEN_KEY = "physical-ai-tutor:reader"


async def reader_token(page: Page) -> str:
    token = await page.evaluate("key => localStorage.getItem(key)", TOKEN_KEY)
    assert isinstance(token, str) and token
    return token


async def api(url: str, token: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.get(path, headers={"Authorization": f"Bearer {token}"})


async def answered(page: Page, question: str) -> Locator:
    turn = await ask(page, question)
    await expect(turn).to_have_attribute("data-status", "done")
    return turn


URDF_QUESTION = "What does a URDF describe?"


async def answered_in_widget(page: Page, chapter_url: str, question: str) -> tuple[Locator, Locator]:
    """Open the book's widget on ``chapter_url`` and ask; its panel and the finished turn."""
    await page.goto(chapter_url)
    await page.get_by_role("button", name="Ask the tutor").click()
    panel = page.get_by_role("dialog", name="Ask the book")
    await panel.get_by_label("Your question").fill(question)
    await panel.get_by_label("Your question").press("Enter")
    turn = panel.locator(".turn").last
    await expect(turn).to_have_attribute("data-status", "done")
    return panel, turn


def watch_frames(page: Page) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def watch(socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", watch)
    return sent


async def test_conversations_are_listed_reopened_continued_rated_and_deleted(
    make_settings: SettingsFactory, page: Page
) -> None:
    sent = watch_frames(page)
    async with stack_with_worker(make_settings()) as (url, worker):
        await page.goto(url)
        history = page.get_by_role("navigation", name="Conversations")
        await expect(history).to_be_visible()
        await expect(history.get_by_text("No conversations yet.")).to_be_visible()
        first = await answered(page, "What is ROS 2?")
        second = await answered(page, "And what is a topic?")
        item = history.locator(".history-item")
        await expect(item).to_have_count(1)
        await expect(item.locator(".history-name")).to_have_text("What is ROS 2?")
        await expect(item.locator(".history-open")).to_have_attribute("aria-current", "true")
        await history_written(worker, 2)

        # Ratings: up on the first answer; down on the second, with a reason and a comment.
        await first.get_by_role("button", name="Helpful", exact=True).click()
        await expect(first.get_by_role("status")).to_have_text("Thanks for the feedback.")
        await second.get_by_role("button", name="Not helpful").click()
        form = second.locator(".feedback-form")
        await expect(form).to_be_visible()
        await form.get_by_label("Not in the book").check()
        await form.get_by_label("Comment (optional)").fill("It never says what a message type is.")
        await screenshot(page, "history-1-rating")
        await form.get_by_role("button", name="Send").click()
        await expect(form).to_be_hidden()
        await expect(second.get_by_role("status")).to_have_text("Thanks for the feedback.")
        await expect(second.get_by_role("button", name="Not helpful")).to_have_attribute("aria-pressed", "true")

        await page.get_by_role("button", name="New conversation").click()
        await answered(page, "What does a URDF describe?")
        await history_written(worker, 3)
        await page.reload()
        await expect(history.locator(".history-name")).to_have_text(["What does a URDF describe?", "What is ROS 2?"])
        await expect(history.locator(".history-meta").nth(1)).to_contain_text("2 questions")
        await screenshot(page, "history-2-list")

        # Reopen the first conversation: every turn as it was, its ratings, and it goes on from there.
        await history.get_by_role("button", name=re.compile("^What is ROS 2?")).click()
        turns = page.locator(".turn")
        await expect(turns.locator(".question-text")).to_have_text(["What is ROS 2?", "And what is a topic?"])
        await expect(turns.first.locator(".answer-body")).to_contain_text("ROS 2")
        await expect(turns.first.locator("mark.cited").first).to_be_visible()
        await expect(turns.first.get_by_role("button", name="Helpful", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        await expect(turns.nth(1).get_by_role("button", name="Not helpful")).to_have_attribute("aria-pressed", "true")
        opened_id = await history.locator(".history-item").nth(1).get_attribute("data-conversation-id")
        await answered(page, "Who receives its messages?")
        asks = [frame for frame in sent if frame["type"] == "ask"]
        assert asks[-1]["conversation_id"] == opened_id == asks[0]["conversation_id"]
        await history_written(worker, 4)
        token = await reader_token(page)
        stored = (await api(url, token, f"/api/conversations/{opened_id}")).json()
        assert [t["question"] for t in stored["turns"]] == [
            "What is ROS 2?",
            "And what is a topic?",
            "Who receives its messages?",
        ]
        assert stored["turns"][0]["feedback"]["rating"] == "up"
        assert stored["turns"][1]["feedback"] == {
            "rating": "down",
            "reason": "not_in_book",
            "comment": "It never says what a message type is.",
        }

        # Delete the other conversation: asked first, then gone from the list and from the service.
        # The continued conversation went back to the top; the other one is below it.
        await expect(history.locator(".history-name")).to_have_text(["What is ROS 2?", "What does a URDF describe?"])
        other_id = await history.locator(".history-item").nth(1).get_attribute("data-conversation-id")
        other = history.locator(f'.history-item[data-conversation-id="{other_id}"]')
        await other.get_by_role("button", name="Delete “What does a URDF describe?”").click()
        await expect(other.get_by_text("Delete this conversation?")).to_be_visible()
        await other.get_by_role("button", name="Delete", exact=True).click()
        await expect(history.locator(".history-item")).to_have_count(1)
        listed = (await api(url, token, "/api/conversations")).json()["conversations"]
        assert [c["id"] for c in listed] == [opened_id]
    assert all(frame["type"] == "hello" for frame in sent[:1]), "hello is the socket's first frame"


async def test_on_a_phone_the_list_is_a_drawer_and_everything_can_be_deleted(
    make_settings: SettingsFactory, page: Page
) -> None:
    await page.set_viewport_size(PHONE)
    async with stack_with_worker(make_settings()) as (url, worker):
        await page.goto(url)
        await answered(page, "How does a humanoid robot keep its balance?")
        await history_written(worker, 1)
        history = page.get_by_role("navigation", name="Conversations")
        await expect(history).to_be_hidden()
        toggle = page.get_by_role("button", name="Conversations")
        await toggle.click()
        await expect(history).to_be_visible()
        await expect(history.locator(".history-name")).to_have_text(["How does a humanoid robot keep its balance?"])
        await expect(page.locator("#history")).to_have_css("transform", "none")  # slid in
        box = await history.bounding_box()
        assert box and box["x"] == 0 and box["width"] <= PHONE["width"] * 0.86
        await screenshot(page, "history-3-phone-drawer")
        await page.keyboard.press("Escape")
        await expect(history).to_be_hidden()
        await expect(toggle).to_be_focused()

        old_token = await reader_token(page)
        await toggle.click()
        await history.get_by_role("button", name="Delete all my conversations").click()
        await history.get_by_role("button", name="Delete all").click()
        await expect(history.get_by_text("Your history is deleted.")).to_be_visible()
        await expect(page.locator(".turn")).to_have_count(0)
        assert (await api(url, old_token, "/api/conversations")).status_code == 401
        # The socket said hello again and the service made a new reader, whose list is empty.
        await page.wait_for_function("key => localStorage.getItem(key)", arg=TOKEN_KEY)
        new_token = await reader_token(page)
        assert new_token != old_token
        assert (await api(url, new_token, "/api/conversations")).json()["conversations"] == []


async def test_the_widget_lists_and_reopens_conversations_in_the_book(
    make_settings: SettingsFactory, page: Page
) -> None:
    async with docusaurus_book() as book:
        settings = make_settings(allowed_origins=[book.url], book_base_url=f"{book.url}/docs")
        async with stack_with_worker(settings) as (url, worker):
            book.tutor_url = url
            panel, turn = await answered_in_widget(page, f"{book.url}/docs/ros2/robot-description", URDF_QUESTION)
            await history_written(worker, 1)
            await turn.get_by_role("button", name="Helpful", exact=True).click()
            await expect(turn.get_by_role("status")).to_have_text("Thanks for the feedback.")
            await panel.get_by_role("button", name="New conversation").click()
            await expect(panel.locator(".turn")).to_have_count(0)

            await panel.get_by_role("button", name="Your conversations").click()
            history = panel.get_by_role("navigation", name="Conversations")
            await expect(history.locator(".history-name")).to_have_text(["What does a URDF describe?"])
            await screenshot(page, "history-4-widget")
            await history.get_by_role("button", name=re.compile("^What does a URDF describe?")).click()
            await expect(history).to_be_hidden()
            await expect(panel.locator(".turn .question-text")).to_have_text(["What does a URDF describe?"])
            await expect(panel.get_by_role("button", name="Helpful", exact=True)).to_have_attribute(
                "aria-pressed", "true"
            )


async def test_a_reader_token_the_service_does_not_know_is_replaced(make_settings: SettingsFactory, page: Page) -> None:
    unknown = "u" * 43  # shaped like a token, but no reader's (a wiped database, say)
    async with stack_with_worker(make_settings()) as (url, worker):
        await page.goto(url)
        await page.evaluate("([key, token]) => localStorage.setItem(key, token)", [TOKEN_KEY, unknown])
        await page.reload()
        await page.wait_for_function(
            "([key, token]) => (localStorage.getItem(key) || token) !== token", arg=[TOKEN_KEY, unknown]
        )
        history = page.get_by_role("navigation", name="Conversations")
        await expect(history.get_by_text("No conversations yet.")).to_be_visible()
        await answered(page, "What is ROS 2?")
        await history_written(worker, 1)
        listed = (await api(url, await reader_token(page), "/api/conversations")).json()["conversations"]
        assert [c["title"] for c in listed] == ["What is ROS 2?"], "the new reader's asks are theirs"


async def test_a_reader_who_signs_in_in_the_book_finds_their_history_on_another_device(
    make_settings: SettingsFactory, page: Page
) -> None:
    key = SigningKey()
    id_token = key.token("reader-42")
    async with docusaurus_book() as book, jwks_server([key]) as jwks:
        settings = make_settings(
            allowed_origins=[book.url],
            book_base_url=f"{book.url}/docs",
            auth_jwks_url=jwks.url,
            auth_issuer=ISSUER,
            auth_audience=AUDIENCE,
        )
        async with stack_with_worker(settings) as (url, worker):
            book.tutor_url = url
            panel, _ = await answered_in_widget(page, f"{book.url}/docs/ros2/robot-description", URDF_QUESTION)
            await history_written(worker, 1)

            # The book's own sign-in tells the widget who the reader is: what they asked joins their account.
            await page.evaluate(
                "token => { window.physicalAiTutorIdToken = () => token;"
                " return window.physicalAiTutorWidget.signInChanged(); }",
                id_token,
            )
            async with httpx.AsyncClient(base_url=url) as client:
                mine = await client.get("/api/conversations", headers={"Authorization": f"Bearer {id_token}"})
            assert [c["title"] for c in mine.json()["conversations"]] == ["What does a URDF describe?"]

            # Another device: nothing stored, signed in from its first page.
            await page.evaluate("localStorage.clear(); sessionStorage.clear()")
            await page.add_init_script(f"window.physicalAiTutorIdToken = () => {json.dumps(id_token)};")
            await page.reload()
            await page.get_by_role("button", name="Ask the tutor").click()
            await expect(panel.locator(".turn")).to_have_count(0)
            await panel.get_by_role("button", name="Your conversations").click()
            history = panel.get_by_role("navigation", name="Conversations")
            await expect(history.locator(".history-name")).to_have_text(["What does a URDF describe?"])
            await history.get_by_role("button", name=re.compile("^What does a URDF describe?")).click()
            await expect(panel.locator(".turn .question-text")).to_have_text(["What does a URDF describe?"])
            await screenshot(page, "history-5-signed-in")


async def test_a_stopped_answer_is_kept_in_the_history_as_far_as_it_went(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, page: Page
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=15)
    async with stack_with_worker(cohere_settings()) as (url, worker):
        await page.goto(url)
        turn = await ask(page, "What is sim-to-real transfer?")
        await expect(turn.locator(".answer-body")).to_have_text(re.compile(r"\w+\W+\w+\W+\w+"))
        await page.get_by_role("button", name="Stop the answer").click()
        await expect(turn.locator(".turn-note")).to_have_text("Stopped.")
        shown = await turn.locator(".answer-body").inner_text()
        await history_written(worker, 1)
        await page.reload()
        history = page.get_by_role("navigation", name="Conversations")
        await history.get_by_role("button", name=re.compile("^What is sim-to-real transfer?")).click()
        kept = page.locator(".turn")
        await expect(kept).to_have_count(1)
        await expect(kept.locator(".turn-note")).to_have_text("Stopped.")
        assert await kept.locator(".answer-body").inner_text() == shown
