"""The fake's knobs: injected failures (and how the SDK retries them), cut streams, rate limits, auth,
the control endpoints and the thread helper."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import cohere
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fake_cohere.__main__ import parse_args
from fake_cohere.knobs import Knobs
from fake_cohere.testing import FakeCohereThread, RunningFake, running_fake_cohere, serve_asgi

from .conftest import BOOK, QUESTION

NO_RETRY: cohere.core.RequestOptions = {"max_retries": 0}


async def embed(co: cohere.AsyncClientV2, **kw: object) -> cohere.EmbedByTypeResponse:
    return await co.embed(
        texts=["a robot"], model="embed-v4.0", input_type="search_query", embedding_types=["float"], **kw
    )


async def test_injected_429_without_retries(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    await fake.set_knobs(fail_status=429, fail_count=1)
    with pytest.raises(cohere.errors.TooManyRequestsError) as raised:
        await embed(co, request_options=NO_RETRY)
    assert raised.value.status_code == 429
    assert raised.value.headers["retry-after"] == "1"
    assert raised.value.body == {"message": "fake failure injected (429)"}
    assert fake.knobs.fail_count == 0
    await embed(co, request_options=NO_RETRY)  # the failure was used up
    assert fake.stats()["statuses"]["embed"] == {"200": 1, "429": 1}


async def test_sdk_retries_429_by_itself(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    # retry-after-ms of 1 makes the SDK's wait 1 ms (it prefers retry-after-ms over retry-after).
    await fake.set_knobs(fail_status=429, fail_count=2, retry_after_ms=1)
    response = await embed(co)  # the default is two retries
    assert len(response.embeddings.float_ or []) == 1
    assert fake.stats()["statuses"]["embed"] == {"200": 1, "429": 2}


async def test_sdk_gives_up_after_its_retries(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    await fake.set_knobs(fail_status=503, fail_count=5, retry_after_ms=1)
    with pytest.raises(cohere.errors.ServiceUnavailableError):
        await embed(co, request_options={"max_retries": 1})
    assert fake.stats()["requests"]["embed"] == 2
    assert fake.knobs.fail_count == 3


async def test_server_error_and_failing_endpoints(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    await fake.set_knobs(fail_status=500, fail_count=1, fail_endpoints=["rerank"])
    await embed(co, request_options=NO_RETRY)  # not a failing endpoint
    with pytest.raises(cohere.errors.InternalServerError) as raised:
        await co.rerank(model="rerank-v3.5", query="q", documents=["d"], request_options=NO_RETRY)
    assert "retry-after" not in raised.value.headers
    assert fake.stats()["statuses"]["rerank"] == {"500": 1}


async def test_chat_streams_are_not_retried_by_the_sdk(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    await fake.set_knobs(fail_status=429, fail_count=1, retry_after_ms=1)
    with pytest.raises(cohere.errors.TooManyRequestsError):
        async for _ in co.chat_stream(model="m", messages=[{"role": "user", "content": QUESTION}]):
            pass
    assert fake.stats()["requests"]["chat"] == 1


@pytest.mark.parametrize("cut_after", [0, 3])
async def test_cut_stream_raises_a_transport_error_without_message_end(
    co: cohere.AsyncClientV2, fake: RunningFake, cut_after: int
) -> None:
    await fake.set_knobs(break_stream_after_tokens=cut_after)
    kinds = []
    with pytest.raises(httpx.TransportError):  # cut mid-body: the pool reports a protocol or read error
        async for event in co.chat_stream(model="m", messages=[{"role": "user", "content": QUESTION}], documents=BOOK):
            kinds.append(event.type)
    assert kinds == ["message-start", "content-start"] + ["content-delta"] * cut_after
    stats = fake.stats()
    assert (stats["streams_broken"], stats["streams_completed"]) == (1, 0)


async def test_short_answers_are_cut_before_content_end(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    await fake.set_knobs(break_stream_after_tokens=1000)
    kinds = []
    with pytest.raises(httpx.TransportError):  # cut mid-body: the pool reports a protocol or read error
        async for event in co.chat_stream(model="m", messages=[{"role": "user", "content": "hi"}]):
            kinds.append(event.type)
    assert kinds[-1] == "content-delta" and "content-end" not in kinds


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_rate_limit_uses_a_sliding_minute() -> None:
    clock = FakeClock()
    knobs = Knobs(rate_limit_per_minute={"embed": 2})
    async with (
        running_fake_cohere(knobs, clock=clock) as fake,
        cohere.AsyncClientV2(api_key="test-key", base_url=fake.base_url) as co,
    ):
        await embed(co, request_options=NO_RETRY)
        clock.now += 20
        await embed(co, request_options=NO_RETRY)
        await co.rerank(model="r", query="q", documents=["d"])  # other endpoints are not limited
        clock.now += 10
        with pytest.raises(cohere.errors.TooManyRequestsError) as raised:
            await embed(co, request_options=NO_RETRY)
        assert raised.value.headers["retry-after"] == "30"  # the first call leaves the window in 30 s
        assert "2 embed requests per minute" in raised.value.body["message"]
        clock.now += 30
        await embed(co, request_options=NO_RETRY)  # the first call left the window
        with pytest.raises(cohere.errors.TooManyRequestsError):
            await embed(co, request_options=NO_RETRY)
        assert fake.stats()["statuses"]["embed"] == {"200": 3, "429": 2}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}])
async def test_missing_or_malformed_auth_is_401(fake: RunningFake, headers: dict[str, str]) -> None:
    body = {"model": "m", "texts": ["a"], "input_type": "search_query", "embedding_types": ["float"]}
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        response = await http.post("/v2/embed", json=body, headers=headers)
        ok = await http.post("/v2/embed", json=body, headers={"Authorization": "Bearer test-key"})
    assert response.status_code == 401
    assert set(response.json()) == {"message"}
    assert ok.status_code == 200


async def test_control_endpoints_change_knobs_report_stats_and_reset(fake: RunningFake) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        assert (await http.get("/_fake/knobs")).json() == Knobs().model_dump(mode="json")
        changed = await http.put("/_fake/knobs", json={"embed_dimension": 64, "rate_limit_per_minute": {"chat": 5}})
        assert changed.status_code == 200
        assert changed.json()["embed_dimension"] == 64
        assert changed.json()["rate_limit_per_minute"] == {"embed": None, "rerank": None, "chat": 5}
        assert fake.knobs.embed_dimension == 64
        assert (await http.put("/_fake/knobs", json={"embed_dimension": "big"})).status_code == 422
        assert (await http.put("/_fake/knobs", json={"no_such_knob": 1})).status_code == 422

        body = {"model": "m", "texts": ["a", "b"], "input_type": "search_query"}
        embedded = await http.post("/v2/embed", json=body, headers={"Authorization": "Bearer k"})
        assert len(embedded.json()["embeddings"]["float"][0]) == 64
        stats = (await http.get("/_fake/stats")).json()
        assert stats["requests"] == {"embed": 1, "rerank": 0, "chat": 0}
        assert stats["texts_embedded"] == 2

        reset = (await http.post("/_fake/reset")).json()
        assert reset["knobs"]["embed_dimension"] == 1024
        assert reset["stats"]["texts_embedded"] == 0


async def test_stats_keep_the_last_chat_request(co: cohere.AsyncClientV2, fake: RunningFake) -> None:
    assert fake.stats()["last_chat_request"] is None
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    await co.chat(model="command-a-03-2025", messages=messages, documents=BOOK[:1])
    last = fake.stats()["last_chat_request"]
    assert last["model"] == "command-a-03-2025"
    assert [m["role"] for m in last["messages"]] == ["system", "user"]
    assert last["documents"] == BOOK[:1]


def lifespan_app(fail: bool) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if fail:
            raise RuntimeError("no database")
        app.state.started = True
        yield

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"started={request.app.state.started}")

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


async def test_serve_asgi_runs_any_app_after_its_startup() -> None:
    async with serve_asgi(lifespan_app(fail=False), lifespan="on") as base_url, httpx.AsyncClient() as http:
        assert (await http.get(base_url + "/")).text == "started=True"
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(base_url + "/")


async def test_serve_asgi_reports_a_failed_startup() -> None:
    with pytest.raises(RuntimeError, match="failed to start"):
        async with serve_asgi(lifespan_app(fail=True), lifespan="on"):
            pytest.fail("the body must not run")


def test_thread_helper_serves_synchronous_callers() -> None:
    with (
        FakeCohereThread(Knobs(embed_dimension=32)) as fake,
        cohere.ClientV2(api_key="test-key", base_url=fake.base_url) as client,
    ):
        response = client.embed(texts=["a", "b"], model="m", input_type="search_document", embedding_types=["float"])
        assert [len(vector) for vector in response.embeddings.float_ or []] == [32, 32]
        fake.set_knobs(fail_status=429, fail_count=1)
        with pytest.raises(cohere.errors.TooManyRequestsError):
            client.embed(texts=["a"], model="m", input_type="search_query", request_options={"max_retries": 0})
        assert fake.stats()["statuses"]["embed"] == {"200": 1, "429": 1}
        base_url = fake.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/_fake/stats")


def test_cli_options_map_to_knobs() -> None:
    args = parse_args(["--port", "9000", "--embed-latency-ms", "5", "--first-token-ms", "50"])
    assert (args.host, args.port, args.embed_latency_ms, args.first_token_ms) == (
        "127.0.0.1",
        9000,
        5.0,
        50.0,
    )
    assert args.tokens_per_second == 0
