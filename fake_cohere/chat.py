"""The fake's chat model: a grounded, extractive answer with citations, and its v2 stream events.

The answer is built from the documents' sentences that share most words with the last user message,
so a RAG pipeline gets back text that really comes from what it retrieved, each sentence cited.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .text import count_tokens, overlap, sentences, word_set

NOTHING_FOUND = "I could not find anything relevant to your question in the provided documents."
_BODY_FIELDS = ("text", "snippet", "content", "body", "chunk")
_TOKEN = re.compile(r"\s*\S+|\s+")


class RequestError(ValueError):
    """The request is malformed; the message is sent back with a 400."""


@dataclass(frozen=True)
class Document:
    id: str
    data: dict[str, Any]

    @property
    def body(self) -> str:
        chosen = [self.data[key] for key in _BODY_FIELDS if isinstance(self.data.get(key), str)]
        if not chosen:
            chosen = [value for key, value in self.data.items() if isinstance(value, str) and key != "id"]
        return " ".join(chosen)

    def cited(self) -> dict[str, Any]:
        return {**self.data, "id": self.id}


@dataclass
class Answer:
    text: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0

    @property
    def tokens(self) -> list[str]:
        """Word-level pieces (each word with the whitespace before it) that concatenate to ``text``."""
        return _TOKEN.findall(self.text)

    def usage(self) -> dict[str, Any]:
        output_tokens = len(self.tokens)
        return {
            "billed_units": {"input_tokens": self.input_tokens, "output_tokens": output_tokens},
            "tokens": {"input_tokens": self.input_tokens + 8, "output_tokens": output_tokens},
        }


def message_text(content: Any) -> str:
    """A message's text: ``content`` is a string or a list of ``{"type": "text", "text": ...}`` blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            block["text"] for block in content if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    raise RequestError("invalid request: message content must be a string or a list of content blocks")


def parse_documents(raw: Any) -> list[Document]:
    """Request documents: strings, or ``{"id": ..., "data": {...}}`` objects (ids made up when missing)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RequestError("invalid request: documents must be a list")
    documents = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            documents.append(Document(id=f"doc:{index}", data={"text": item}))
        elif isinstance(item, dict):
            data = item.get("data", {k: v for k, v in item.items() if k != "id"})
            if not isinstance(data, dict):
                raise RequestError(f"invalid request: documents[{index}].data must be an object")
            documents.append(Document(id=str(item.get("id") or f"doc:{index}"), data=data))
        else:
            raise RequestError(f"invalid request: documents[{index}] must be a string or an object")
    return documents


def last_user_message(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise RequestError("invalid request: messages must be a non-empty list")
    for message in reversed(messages):
        if not isinstance(message, dict):
            raise RequestError("invalid request: every message must be an object")
        if message.get("role") == "user":
            return message_text(message.get("content"))
    raise RequestError("invalid request: messages must contain a user message")


def compose_answer(messages: Any, raw_documents: Any, max_sentences: int) -> Answer:
    """The grounded answer to the last user message, one citation per chosen sentence."""
    question = last_user_message(messages)
    documents = parse_documents(raw_documents)
    query = word_set(question)
    scored: list[tuple[float, int, int, str]] = []
    for doc_index, document in enumerate(documents):
        for sent_index, sentence in enumerate(sentences(document.body)):
            score = overlap(query, word_set(sentence))
            if score > 0:
                scored.append((-score, doc_index, sent_index, sentence))
    scored.sort()
    chosen: list[tuple[Document, str]] = []
    seen: set[str] = set()
    for _, doc_index, _, sentence in scored:
        if sentence not in seen:
            seen.add(sentence)
            chosen.append((documents[doc_index], sentence))
        if len(chosen) == max_sentences:
            break
    input_tokens = count_tokens(question) + sum(count_tokens(d.body) for d in documents)
    if not chosen:
        return Answer(text=NOTHING_FOUND, input_tokens=input_tokens)
    text = ""
    citations = []
    for document, sentence in chosen:
        if text:
            text += " "
        start = len(text)
        text += sentence
        citations.append(
            {
                "start": start,
                "end": len(text),
                "text": sentence,
                "sources": [{"type": "document", "id": document.id, "document": document.cited()}],
                "content_index": 0,
                "type": "TEXT_CONTENT",
            }
        )
    return Answer(text=text, citations=citations, input_tokens=input_tokens)


def chat_response(answer: Answer, response_id: str) -> dict[str, Any]:
    """The non-streamed ``POST /v2/chat`` body."""
    return {
        "id": response_id,
        "finish_reason": "COMPLETE",
        "message": {
            "role": "assistant",
            "content": [{"type": "text", "text": answer.text}],
            "citations": answer.citations,
        },
        "usage": answer.usage(),
    }


def stream_events(answer: Answer, response_id: str) -> Iterator[dict[str, Any]]:
    """The v2 stream, in order; each citation starts right after the delta that completes its span."""
    yield {
        "type": "message-start",
        "id": response_id,
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
                              "citations": []}},
    }  # fmt: skip
    yield {
        "type": "content-start",
        "index": 0,
        "delta": {"message": {"content": {"type": "text", "text": ""}}},
    }
    pending = list(enumerate(answer.citations))
    written = 0
    for token in answer.tokens:
        yield {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": token}}}}
        written += len(token)
        while pending and pending[0][1]["end"] <= written:
            index, citation = pending.pop(0)
            yield {"type": "citation-start", "index": index, "delta": {"message": {"citations": citation}}}
            yield {"type": "citation-end", "index": index}
    yield {"type": "content-end", "index": 0}
    yield {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": answer.usage()}}
