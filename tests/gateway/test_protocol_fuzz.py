"""Property-based tests of the socket protocol: whatever a client sends, it gets a clear answer and the
socket keeps working."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SettingsFactory
from tests.stack import ChatClient, chat, running_stack

MAX_FRAME = 4096

ids_that_are_not_ids = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["../../etc/passwd", "tutor:queue", "*", "arq:job:x", "a" * 31, "A" * 32, "\x00" * 32]),
    st.integers(),
    st.none(),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)


@st.composite
def broken_frames(draw: st.DrawFn) -> str | bytes:
    """Frames that are wrong in one of the ways a client can get them wrong."""
    kind = draw(st.sampled_from(["text", "binary", "json", "unknown", "missing", "wrong", "ids", "after", "huge"]))
    if kind == "text":
        text = draw(st.text(min_size=1, max_size=200))
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        return "{" + text  # made sure it is not valid JSON
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=200))
    if kind == "json":
        value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return json.dumps(value)
    if kind == "unknown":
        frame: dict[str, Any] = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=4))
        frame["type"] = draw(st.text(max_size=20).filter(lambda t: t not in {"ask", "cancel", "resume"}))
        return json.dumps(frame)
    if kind == "missing":
        return json.dumps({"type": draw(st.sampled_from(["ask", "cancel", "resume"]))})
    if kind == "wrong":
        question = draw(st.one_of(st.integers(), st.lists(st.text()), st.none(), st.just(" \n\t ")))
        return json.dumps({"type": "ask", "question": question})
    if kind == "ids":
        kind_of = draw(st.sampled_from(["cancel", "resume"]))
        return json.dumps({"type": kind_of, "turn_id": draw(ids_that_are_not_ids)})
    if kind == "after":
        # twenty digits, but past what a Redis stream id can hold (two unsigned 64-bit integers)
        big, any_part = st.integers(2**64, 10**20 - 1), st.integers(0, 10**20 - 1)
        parts = draw(st.one_of(st.tuples(big, any_part), st.tuples(any_part, big)))
        return json.dumps({"type": "resume", "turn_id": "f" * 32, "after": "{}-{}".format(*parts)})
    size = draw(st.integers(MAX_FRAME + 1, MAX_FRAME * 3))
    return json.dumps({"type": "ask", "question": "x" * size})


@pytest.fixture
async def client(make_settings: SettingsFactory) -> AsyncIterator[ChatClient]:
    # Every example ends with a cancel: the per-socket budget of control frames has its own test.
    settings = make_settings(max_frame_bytes=MAX_FRAME, max_question_chars=500, resume_cancel_per_minute_per_socket=0)
    async with running_stack(settings) as url, chat(url) as connected:
        yield connected


@given(frame=broken_frames())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_every_broken_frame_gets_an_error_and_the_socket_lives(client: ChatClient, frame: str | bytes) -> None:
    await client.send(frame)
    error = await client.receive()
    assert error["type"] == "error", error
    assert error["code"] in {"invalid_frame", "too_large"}, error
    assert error["turn_id"] is None
    assert "Traceback" not in error["message"] and len(error["message"]) < 300
    # Still usable: a well-formed frame is understood (a cancel of an unknown turn answers at once).
    await client.send({"type": "cancel", "turn_id": "f" * 32})
    assert (await client.receive())["code"] == "unknown_turn"


@given(question=st.text(min_size=1, max_size=300).filter(lambda q: q.strip()))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_odd_unicode_questions_are_answered(client: ChatClient, question: str) -> None:
    turn = await client.ask(question)
    assert turn.terminal["type"] == "done", turn.terminal
    assert turn.text == turn.terminal["answer"]
