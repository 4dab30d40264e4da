"""The fake Cohere server speaks v2 well enough for the real SDK: embed, rerank, chat and chat streams."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import cohere
import httpx
import numpy as np
import orjson
import pytest

from fake_cohere.chat import NOTHING_FOUND
from fake_cohere.testing import RunningFake

from .conftest import BOOK, QUESTION

MODEL = {"embed": "embed-v4.0", "rerank": "rerank-v3.5", "chat": "command-a-03-2025"}


async def embed(co: cohere.AsyncClientV2, texts: list[str], input_type: str = "search_document", **kw: object):
    response = await co.embed(texts=texts, model=MODEL["embed"], input_type=input_type, embedding_types=["float"], **kw)
    assert response.embeddings.float_ is not None
    return np.array(response.embeddings.float_)


async def test_embed_returns_one_unit_vector_per_text_in_the_asked_dimension(
    co: cohere.AsyncClientV2,
) -> None:
    vectors = await embed(co, ["robots", "walking robots", "ROS 2 topics"])
    assert vectors.shape == (3, 1024)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)

    small = await embed(co, ["robots"], output_dimension=256)
    assert small.shape == (1, 256)


async def test_embed_answers_with_the_v2_by_type_shape(co: cohere.AsyncClientV2) -> None:
    response = await co.embed(
        texts=["one", "two"],
        model=MODEL["embed"],
        input_type="search_query",
        embedding_types=["float", "int8"],
    )
    assert response.response_type == "embeddings_by_type"
    assert response.texts == ["one", "two"]
    assert response.id
    assert response.meta is not None and response.meta.billed_units is not None
    assert response.meta.billed_units.input_tokens == 2
    assert response.embeddings.int8 is not None and len(response.embeddings.int8) == 2
    assert all(-128 <= value <= 127 for value in response.embeddings.int8[0])


async def test_identical_texts_give_identical_vectors(co: cohere.AsyncClientV2) -> None:
    text = "Inverse kinematics maps a foot position to joint angles."
    first = await embed(co, [text, text], input_type="search_document")
    again = await embed(co, [text], input_type="search_query")
    assert np.array_equal(first[0], first[1])
    assert np.array_equal(first[0], again[0])


def test_embeddings_do_not_depend_on_the_process_hash_seed() -> None:
    code = (
        "from fake_cohere.embedding import embed_texts\n"
        "print(embed_texts(['balance of humanoid robots'], 64)[0].tolist())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1


async def test_related_texts_are_closer_than_unrelated_ones(co: cohere.AsyncClientV2) -> None:
    query, *docs = await embed(
        co,
        [
            QUESTION,
            "Balance control keeps a walking humanoid robot upright.",
            "ROS 2 launch files start several nodes at once.",
            "Bake the bread for forty minutes.",
        ],
    )
    related, technical, unrelated = (float(query @ doc) for doc in docs)
    assert related > 0.3
    assert related > technical + 0.2
    assert related > unrelated + 0.2


async def test_more_than_96_texts_is_a_bad_request(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    with pytest.raises(cohere.errors.BadRequestError) as raised:
        await embed(co, [f"text {i}" for i in range(97)])
    assert raised.value.status_code == 400
    assert "at most 96" in raised.value.body["message"]
    assert fake.stats()["texts_embedded"] == 0
    assert (await embed(co, [f"text {i}" for i in range(96)])).shape == (96, 1024)


async def test_rerank_orders_documents_by_word_overlap(co: cohere.AsyncClientV2) -> None:
    documents = [
        "Bake the bread for forty minutes.",
        "Humanoid robots walk.",
        "Humanoid robots keep their balance with ankle torque.",
        "Balance is hard.",
    ]
    response = await co.rerank(model=MODEL["rerank"], query=QUESTION, documents=documents, top_n=3)
    assert [result.index for result in response.results] == [2, 1, 3]
    scores = [result.relevance_score for result in response.results]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < score <= 1 for score in scores)

    everything = await co.rerank(model=MODEL["rerank"], query=QUESTION, documents=documents)
    assert len(everything.results) == 4
    assert everything.results[-1].index == 0 and everything.results[-1].relevance_score == 0


def user(text: str) -> dict[str, object]:
    return {"role": "user", "content": text}


async def test_chat_answers_from_the_documents_with_exact_citations(co: cohere.AsyncClientV2) -> None:
    messages = [{"role": "system", "content": "Answer from the book."}, user(QUESTION)]
    response = await co.chat(model=MODEL["chat"], messages=messages, documents=BOOK)

    assert response.finish_reason == "COMPLETE"
    assert response.message.content is not None
    answer = response.message.content[0].text
    citations = response.message.citations or []
    assert len(citations) == 3
    assert "balance" in answer.lower()
    assert "soup" not in answer and "bread" not in answer
    for citation in citations:
        assert citation.start is not None and citation.end is not None
        assert answer[citation.start : citation.end] == citation.text
        source = citation.sources[0]
        assert source.type == "document"
        assert source.id in {"balance", "ros"}
        assert source.document is not None and source.document["id"] == source.id
        body = source.document.get("text") or source.document.get("snippet")
        assert citation.text in body
    assert response.usage is not None and response.usage.billed_units.output_tokens > 0


async def test_chat_accepts_content_blocks_and_the_answer_length_knob(
    co: cohere.AsyncClientV2, fake: RunningFake
) -> None:
    await fake.set_knobs(answer_sentences=1)
    messages = [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    response = await co.chat(model=MODEL["chat"], messages=messages, documents=BOOK)
    assert len(response.message.citations or []) == 1
    assert response.message.content[0].text == response.message.citations[0].text


async def test_chat_without_documents_says_nothing_was_found(co: cohere.AsyncClientV2) -> None:
    response = await co.chat(model=MODEL["chat"], messages=[user(QUESTION)])
    assert response.message.content[0].text == NOTHING_FOUND
    assert not response.message.citations


async def stream_events(co: cohere.AsyncClientV2, **kw: object) -> list:
    return [event async for event in co.chat_stream(model=MODEL["chat"], **kw)]


async def test_chat_stream_sends_the_v2_events_in_order(co: cohere.AsyncClientV2) -> None:
    complete = await co.chat(model=MODEL["chat"], messages=[user(QUESTION)], documents=BOOK)
    events = await stream_events(co, messages=[user(QUESTION)], documents=BOOK)

    kinds = [event.type for event in events]
    assert kinds[:2] == ["message-start", "content-start"]
    assert kinds[-2:] == ["content-end", "message-end"]
    assert set(kinds[2:-2]) == {"content-delta", "citation-start", "citation-end"}
    assert events[0].delta.message.role == "assistant"
    assert events[-1].delta.finish_reason == "COMPLETE"
    assert events[-1].delta.usage.billed_units.output_tokens == kinds.count("content-delta")

    text = before_last_delta = ""
    citations = []
    for position, event in enumerate(events):
        if event.type == "content-delta":
            before_last_delta = text
            text += event.delta.message.content.text
        elif event.type == "citation-start":
            citation = event.delta.message.citations
            # the cited span was completed by the latest delta, not earlier
            assert len(before_last_delta) < citation.end <= len(text)
            assert kinds[position + 1] == "citation-end" and events[position + 1].index == event.index
            citations.append(citation)
    assert kinds.count("content-delta") > 10
    assert text == complete.message.content[0].text
    assert [c.index for c in events if c.type == "citation-start"] == [0, 1, 2]
    assert [(c.start, c.end, c.text) for c in citations] == [
        (c.start, c.end, c.text) for c in complete.message.citations
    ]
    assert [c.sources[0].id for c in citations] == [c.sources[0].id for c in complete.message.citations]
    assert {c.sources[0].id for c in citations} <= {"balance", "ros"}


async def test_chat_stream_frames_are_plain_sse(fake: RunningFake) -> None:
    body = {"model": "m", "stream": True, "messages": [user(QUESTION)], "documents": BOOK[:1]}
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        response = await http.post("/v2/chat", json=body, headers={"Authorization": "Bearer k"})
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[-1] == ""
    for frame in frames[:-1]:
        event_line, data_line = frame.split("\n")
        kind = event_line.removeprefix("event: ")
        assert orjson.loads(data_line.removeprefix("data: "))["type"] == kind


async def test_paced_stream_leaves_the_server_free(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    await fake.set_knobs(chat_first_token_ms=200, tokens_per_second=100)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stream = asyncio.create_task(stream_events(co, messages=[user(QUESTION)], documents=BOOK))
    vectors = await embed(co, ["answered while the stream is paced"])
    assert not stream.done()  # the embed call came back while the stream was still paced
    events = await stream
    deltas = sum(event.type == "content-delta" for event in events)
    assert vectors.shape == (1, 1024)
    assert loop.time() - started >= 0.2 + (deltas - 1) / 100 * 0.9
