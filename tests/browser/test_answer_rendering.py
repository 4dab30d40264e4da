"""What the page makes of the events it receives: Markdown rendered safely with cited spans marked, and
errors said in plain words. The socket is answered by the test (Playwright's WebSocket routing), so each
case is exact; the real stack is covered by test_chat_page.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import count
from typing import Any

from playwright.async_api import Page, WebSocketRoute, expect

from tests.browser.conftest import SOCKET, ask, screenshot
from tests.conftest import SettingsFactory
from tests.stack import running_gateway

TURN_ID = "0123456789abcdef0123456789abcdef"
ANSWER = (
    "## Joints\n\n"
    "A **revolute** joint rotates; see [the URDF chapter](/docs/ros2/robot-description).\n\n"
    "- `fixed`: no motion\n"
    "- `prismatic`: slides\n\n"
    "```xml\n"
    '<joint name="knee" type="revolute"/>\n'
    "```\n\n"
    'Raw markup stays text: <img src=x onerror="window.injected=1"> and [a trap](javascript:window.injected=2).'
)
CITED = "A **revolute** joint rotates"
SOURCE = {
    "id": "doc-1",
    "doc": "02-ros2/02-urdf-and-tf.md",
    "title": "Describing a Robot with URDF and TF",
    "heading": "Describing a Robot with URDF and TF > Joint types",
    "url": "/docs/ros2/robot-description#joint-types",
    "snippet": "| Type | Motion |\n| --- | --- |\n| `revolute` | Rotation about an axis |",
    "score": 0.9,
}


class ScriptedServer:
    """Answers each `ask` with the next scripted list of events (ids added, increasing like Redis's). A
    `hello` is refused as a service without durable memory refuses it; ``received`` holds the other frames."""

    def __init__(self, *replies: list[dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.received: list[dict[str, Any]] = []
        self.hellos: list[dict[str, Any]] = []
        self.ids: Iterator[int] = count(1763740000000)

    def __call__(self, socket: WebSocketRoute) -> None:
        socket.on_message(lambda message: self.reply(socket, json.loads(message)))

    def reply(self, socket: WebSocketRoute, frame: dict[str, Any]) -> None:
        if frame["type"] == "hello":
            self.hellos.append(frame)
            socket.send(
                json.dumps({"type": "error", "turn_id": None, "code": "invalid_frame", "message": "unknown type"})
            )
            return
        self.received.append(frame)
        if frame["type"] != "ask" or not self.replies:
            return
        for event in self.replies.pop(0):
            if event.get("turn_id"):
                event = {"id": f"{next(self.ids)}-0", **event}
            socket.send(json.dumps(event))


def streamed(answer: str, *, chunk: int = 7) -> list[dict[str, Any]]:
    start = answer.index(CITED)
    return [
        {"type": "accepted", "turn_id": TURN_ID, "conversation_id": "c1"},
        {"type": "sources", "turn_id": TURN_ID, "sources": [SOURCE]},
        *({"type": "delta", "turn_id": TURN_ID, "text": answer[i : i + chunk]} for i in range(0, len(answer), chunk)),
        {
            "type": "citation",
            "turn_id": TURN_ID,
            "start": start,
            "end": start + len(CITED),
            "text": CITED,
            "source_ids": ["doc-1"],
        },
        {"type": "done", "turn_id": TURN_ID, "answer": answer, "provider": "cohere"},
    ]


async def test_markdown_is_rendered_safely_with_cited_spans(make_settings: SettingsFactory, page: Page) -> None:
    server = ScriptedServer(streamed(ANSWER))
    await page.route_web_socket(SOCKET, server)
    async with running_gateway(make_settings()) as url:
        await page.goto(url)
        turn = await ask(page, "Which joints are there?")
        await expect(turn).to_have_attribute("data-status", "done")
        body = turn.locator(".answer-body")
        await expect(body.get_by_role("heading", name="Joints")).to_be_visible()
        await expect(body.locator("strong")).to_have_text("revolute")
        await expect(body.get_by_role("link", name="the URDF chapter")).to_have_attribute(
            "href", f"{url}/docs/ros2/robot-description"
        )
        await expect(body.locator("li code")).to_have_text(["fixed", "prismatic"])
        await expect(body.locator("pre code")).to_have_text('<joint name="knee" type="revolute"/>\n')
        await expect(body.locator("pre code")).to_have_attribute("data-lang", "xml")
        # What the model wrote as markup is shown as text and never becomes markup or a script link.
        await expect(body).to_contain_text('<img src=x onerror="window.injected=1">')
        await expect(body.locator("img")).to_have_count(0)
        await expect(body.locator("a[href^='javascript']")).to_have_count(0)
        await expect(body.get_by_text("a trap")).to_be_visible()
        assert await page.evaluate("window.injected") is None

        # The cited span crosses the bold word: marked on both sides of it, one reference after it.
        await expect(body.locator("mark.cited")).to_have_text(["A ", "revolute", " joint rotates"])
        refs = body.locator(".refs a")
        await expect(refs).to_have_text(["1"])
        await expect(refs).to_have_attribute("href", f"{url}/docs/ros2/robot-description#joint-types")
        await expect(turn.locator(".source a")).to_have_text("Describing a Robot with URDF and TF \u203a Joint types")
        await expect(turn.locator(".source-snippet")).not_to_contain_text("|")
        await expect(turn.locator(".turn-note")).to_be_hidden()  # the language model answered: no offline note
        await screenshot(page, "page-8-markdown")
    [frame] = server.received
    assert frame["type"] == "ask" and frame["question"] == "Which joints are there?"
    assert re.fullmatch(r"[0-9a-f]{32}", frame["conversation_id"]), "a new conversation gets an id of its own"


async def test_errors_are_said_in_plain_words(make_settings: SettingsFactory, page: Page) -> None:
    server = ScriptedServer(
        [
            {
                "type": "error",
                "turn_id": None,
                "code": "rate_limited",
                "message": "you are asking faster than the tutor allows; please wait a moment",
                "retry_after": 12,
            }
        ],
        [
            {"type": "accepted", "turn_id": TURN_ID, "conversation_id": "c1"},
            {"type": "error", "turn_id": TURN_ID, "code": "busy", "message": "queue full", "retry_after": 3.2},
        ],
    )
    await page.route_web_socket(SOCKET, server)
    async with running_gateway(make_settings()) as url:
        await page.goto(url)
        limited = await ask(page, "What is a humanoid?")
        await expect(limited).to_have_attribute("data-status", "failed")
        note = limited.locator(".turn-note")
        await expect(note).to_have_text("Too many questions at once. Please try again in 12 seconds. Ask again")
        await expect(page.get_by_role("status")).to_have_text(
            "Too many questions at once. Please try again in 12 seconds."
        )

        await note.get_by_role("button", name="Ask again").click()
        busy = page.locator(".turn").nth(1)
        await expect(busy.locator(".question-text")).to_have_text("What is a humanoid?")
        await expect(busy.locator(".turn-note")).to_have_text(
            "The tutor is busy right now. Please try again in 4 seconds. Ask again"
        )
        await screenshot(page, "page-9-errors")
    assert [frame["question"] for frame in server.received] == ["What is a humanoid?"] * 2


DECLINED = "The book does not cover the weather. The nearest chapters are listed below."
NEAREST = {**SOURCE, "id": "doc-2", "snippet": "A robot's body as a tree of links."}
SUGGESTIONS = ["What does a URDF describe?", "How does TF track frames?", "What joint types are there?"]


async def test_a_declined_answer_is_quiet_and_suggestions_ask(make_settings: SettingsFactory, page: Page) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    declined = [
        {"type": "accepted", "turn_id": TURN_ID, "conversation_id": "c1"},
        {"type": "sources", "turn_id": TURN_ID, "sources": [NEAREST]},
        {"type": "delta", "turn_id": TURN_ID, "text": DECLINED},
        {"type": "done", "turn_id": TURN_ID, "answer": DECLINED, "provider": "offline", "grounded": False},
    ]
    answered = [{**event, "turn_id": "1" * 32} for event in streamed(ANSWER)]
    answered[-1] = {**answered[-1], "grounded": True, "suggestions": SUGGESTIONS}
    server = ScriptedServer(declined, answered, [{**event, "turn_id": "2" * 32} for event in streamed(ANSWER)])
    await page.route_web_socket(SOCKET, server)
    async with running_gateway(make_settings()) as url:
        await page.goto(url)
        turn = await ask(page, "What's the weather in Paris?")
        await expect(turn).to_have_attribute("data-status", "done")
        await expect(turn).to_have_class(re.compile(r"\bis-declined\b"))
        await expect(turn.locator(".answer-body")).to_have_text(DECLINED)
        await expect(turn.locator(".turn-note")).to_be_hidden()  # no "Offline mode" line under a decline
        await expect(turn.locator(".refs")).to_have_count(0)
        await expect(turn.get_by_text("Nearest chapters (1)")).to_be_visible()
        await expect(turn.locator(".source-list")).to_have_css("list-style-type", "disc")  # no source numbers
        color = await turn.locator(".answer-body").evaluate("b => getComputedStyle(b).color")
        muted = await turn.locator(".answer-body").evaluate(
            "b => getComputedStyle(b).getPropertyValue('--muted').trim()"
        )
        assert color == "rgb(93, 93, 114)" and muted == "#5d5d72", "shown in the quieter colour"
        await screenshot(page, "page-10-declined")

        second = await ask(page, "Which joints are there?")
        await expect(second).to_have_attribute("data-status", "done")
        suggestions = second.get_by_role("button", name=re.compile(r"\?$"))
        await expect(suggestions).to_have_text(SUGGESTIONS)
        await screenshot(page, "page-11-suggestions")
        await suggestions.nth(1).click()
        third = page.locator(".turn").nth(2)
        await expect(third.locator(".question-text")).to_have_text(SUGGESTIONS[1])
        await expect(third).to_have_attribute("data-status", "done")
        await expect(second.locator(".suggestion")).to_have_count(0)  # only the latest answer offers them
        await expect(third.locator(".suggestion")).to_have_count(0)  # this done had none: nothing shown

        # A service without durable memory: its refusal of `hello` leaves no list, no ratings, no API calls.
        await expect(page.locator("#history")).to_be_hidden()
        await expect(page.get_by_role("button", name="Conversations")).to_be_hidden()
        await expect(page.locator(".feedback")).to_have_count(3)
        for group in await page.locator(".feedback").all():
            await expect(group).to_be_hidden()
    assert [frame["question"] for frame in server.received] == [
        "What's the weather in Paris?",
        "Which joints are there?",
        SUGGESTIONS[1],
    ]
    assert len(server.hellos) == 1 and server.hellos[0] == {"type": "hello"}
    assert not [u for u in requests if "/api/" in u]
