"""A fake Cohere API speaking the v2 wire protocol (embed, rerank, chat with SSE streaming).

``create_app`` returns a Starlette application; point ``cohere.AsyncClientV2(base_url=...)`` at it.
Behaviour (latency, failures, limits) is set by ``Knobs``, changeable while running via ``/_fake/knobs``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .chat import RequestError, chat_response, compose_answer
from .embedding import embed_texts, quantize
from .knobs import Endpoint, Knobs
from .state import FakeState, Rejection
from .streaming import EventStream, install_cut_log_filter
from .text import count_tokens, relevance, word_set

logger = logging.getLogger(__name__)

_BEARER = re.compile(r"^Bearer\s+\S+")
_INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}
_EMBEDDING_TYPES = {"float", "int8", "uint8"}
_META = {"api_version": {"version": "2"}}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


async def _open(request: Request, state: FakeState, endpoint: Endpoint) -> dict[str, Any] | JSONResponse:
    """Auth, injected failures, rate limit and JSON parsing, shared by the API endpoints."""
    state.requests[endpoint] += 1
    auth = request.headers.get("authorization")
    if not auth:
        return error(401, "no api key supplied")
    if not _BEARER.match(auth):
        return error(401, "invalid api token")
    rejection: Rejection | None = state.admit(endpoint)
    if rejection is not None:
        logger.debug("%s rejected with %d: %s", endpoint, rejection.status, rejection.message)
        return error(rejection.status, rejection.message, rejection.headers)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return error(400, "invalid request: body is not valid JSON")
    if not isinstance(body, dict):
        return error(400, "invalid request: body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return error(400, "invalid request: model must be specified")
    return body


async def _pause(milliseconds: float) -> None:
    if milliseconds > 0:
        await asyncio.sleep(milliseconds / 1000)


def create_app(knobs: Knobs | None = None, *, clock: Callable[[], float] | None = None) -> Starlette:
    """The fake server. ``clock`` (monotonic seconds) drives the rate-limit windows; tests may replace it."""
    state = FakeState(knobs) if clock is None else FakeState(knobs, clock=clock)
    install_cut_log_filter()

    def respond(endpoint: Endpoint, response: Response) -> Response:
        state.record(endpoint, response.status_code)
        return response

    async def embed(request: Request) -> Response:
        body = await _open(request, state, "embed")
        if isinstance(body, Response):
            return respond("embed", body)
        problem, texts, kinds, dimension = _embed_params(body, state.knobs)
        if problem:
            return respond("embed", error(400, problem))
        await _pause(state.knobs.embed_latency_ms)
        matrix = embed_texts(texts, dimension)
        embeddings: dict[str, Any] = {kind: matrix if kind == "float" else quantize(matrix, kind) for kind in kinds}
        state.texts_embedded += len(texts)
        billed = {"input_tokens": sum(count_tokens(t) for t in texts)}
        return respond(
            "embed",
            JSONResponse(
                {
                    "id": str(uuid.uuid4()),
                    "embeddings": embeddings,
                    "texts": texts,
                    "meta": {**_META, "billed_units": billed},
                    "response_type": "embeddings_by_type",
                }
            ),
        )

    async def rerank(request: Request) -> Response:
        body = await _open(request, state, "rerank")
        if isinstance(body, Response):
            return respond("rerank", body)
        query, documents, top_n = body.get("query"), body.get("documents"), body.get("top_n")
        if not isinstance(query, str) or not query.strip():
            return respond("rerank", error(400, "invalid request: query must be a non-empty string"))
        if not isinstance(documents, list) or not all(isinstance(d, str | dict) for d in documents):
            return respond("rerank", error(400, "invalid request: documents must be a list of strings"))
        if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
            return respond("rerank", error(400, "invalid request: top_n must be a positive integer"))
        await _pause(state.knobs.rerank_latency_ms)
        scores = relevance(word_set(query), [word_set(_document_text(d)) for d in documents])
        order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))[: top_n or len(documents)]
        state.documents_reranked += len(documents)
        results = [{"index": i, "relevance_score": scores[i]} for i in order]
        payload = {
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": {**_META, "billed_units": {"search_units": 1}},
        }
        return respond("rerank", JSONResponse(payload))

    async def chat(request: Request) -> Response:
        body = await _open(request, state, "chat")
        if isinstance(body, Response):
            return respond("chat", body)
        state.last_chat_request = body
        knobs = state.knobs
        try:
            answer = compose_answer(body.get("messages"), body.get("documents"), knobs.answer_sentences)
        except RequestError as exc:
            return respond("chat", error(400, str(exc)))
        response_id = str(uuid.uuid4())
        if body.get("stream") is True:
            state.chat_streams += 1
            return respond("chat", EventStream(answer, response_id, knobs, state))
        generation_ms = 1000 * len(answer.tokens) / knobs.tokens_per_second if knobs.tokens_per_second else 0
        await _pause(knobs.chat_first_token_ms + generation_ms)
        return respond("chat", JSONResponse(chat_response(answer, response_id)))

    async def get_knobs(request: Request) -> Response:
        return JSONResponse(state.knobs.model_dump(mode="json"))

    async def put_knobs(request: Request) -> Response:
        try:
            changes = orjson.loads(await request.body())
            if not isinstance(changes, dict):
                return error(400, "knobs must be a JSON object")
            knobs = state.update_knobs(changes)
        except orjson.JSONDecodeError:
            return error(400, "knobs must be JSON")
        except ValidationError as exc:
            return JSONResponse({"message": "invalid knobs", "errors": exc.errors(include_url=False)}, 422)
        logger.info("knobs changed: %s", sorted(changes))
        return JSONResponse(knobs.model_dump(mode="json"))

    async def get_stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"knobs": state.knobs.model_dump(mode="json"), "stats": state.stats()})

    app = Starlette(
        routes=[
            Route("/v2/embed", embed, methods=["POST"]),
            Route("/v2/rerank", rerank, methods=["POST"]),
            Route("/v2/chat", chat, methods=["POST"]),
            Route("/_fake/knobs", get_knobs, methods=["GET"]),
            Route("/_fake/knobs", put_knobs, methods=["PUT"]),
            Route("/_fake/stats", get_stats, methods=["GET"]),
            Route("/_fake/reset", reset, methods=["POST"]),
        ]
    )
    app.state.fake = state
    return app


def _embed_params(body: dict[str, Any], knobs: Knobs) -> tuple[str | None, list[str], list[str], int]:
    """(problem, texts, embedding types, dimension) of an embed request; ``problem`` is a 400 message."""
    texts, kinds = body.get("texts"), body.get("embedding_types") or ["float"]
    dimension = body.get("output_dimension") or knobs.embed_dimension
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return "invalid request: texts must be a list of strings", [], [], 0
    if not texts:
        return "invalid request: texts must not be empty", [], [], 0
    if len(texts) > knobs.max_texts_per_embed:
        limit, received = knobs.max_texts_per_embed, len(texts)
        return (
            f"invalid request: total number of texts must be at most {limit} - received {received}",
            [],
            [],
            0,
        )
    if body.get("input_type") not in _INPUT_TYPES:
        return f"invalid request: input_type must be one of {sorted(_INPUT_TYPES)}", [], [], 0
    if not isinstance(kinds, list) or not set(kinds) <= _EMBEDDING_TYPES:
        return f"invalid request: embedding_types must be among {sorted(_EMBEDDING_TYPES)}", [], [], 0
    if not isinstance(dimension, int) or not 8 <= dimension <= 8192:
        return "invalid request: output_dimension must be an integer between 8 and 8192", [], [], 0
    return None, texts, list(dict.fromkeys(kinds)), dimension


def _document_text(document: str | dict[str, Any]) -> str:
    if isinstance(document, str):
        return document
    return " ".join(v for v in document.values() if isinstance(v, str))
