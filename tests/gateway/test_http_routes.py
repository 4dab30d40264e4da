"""REST: the one-shot chat, liveness, readiness and the root page Spaces probes."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from eval.docusaurus_site import render_site, site_app
from fake_cohere.testing import RunningFake, serve_asgi
from shared import keys
from shared.waiting import wait_event
from tests.conftest import SettingsFactory
from tests.factories import SAMPLE_BOOK, sitemap
from tests.stack import running_gateway, running_stack, running_worker, worker_ready


async def test_rest_chat_offline(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/api/chat", json={"question": "What does a URDF describe?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "turn_id", "conversation_id", "answer", "sources", "citations", "provider", "grounded", "suggestions"
    }  # fmt: skip
    assert body["provider"] == "offline" and body["answer"] and body["grounded"] is True
    assert any("urdf" in s["doc"] for s in body["sources"])
    for citation in body["citations"]:
        assert body["answer"][citation["start"] : citation["end"]] == citation["text"]


async def test_rest_chat_cohere(cohere_settings: SettingsFactory, fake_cohere: RunningFake) -> None:
    async with running_stack(cohere_settings()) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(
            "/api/chat", json={"question": "What is sim-to-real transfer?", "conversation_id": "rest-1"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provider"] == "cohere" and body["conversation_id"] == "rest-1"
    assert body["citations"] and body["sources"]


async def test_rest_chat_refuses_bad_input_with_a_code(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        too_long = await client.post("/api/chat", json={"question": "x" * 5000})
        blank = await client.post("/api/chat", json={"question": "   "})
        missing = await client.post("/api/chat", json={})
    assert too_long.status_code == 413 and too_long.json()["error"]["code"] == "too_large"
    assert blank.status_code == 422 and blank.json()["error"]["code"] == "invalid_frame"
    assert missing.status_code == 422


async def test_probes_and_readiness(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/")).status_code == 200
        assert (await client.head("/")).status_code == 200
        assert (await client.get("/docs")).status_code == 200
        not_ready = await client.get("/ready")
        assert not_ready.status_code == 503
        assert "worker" in not_ready.json()["failing"], "no worker runs yet, and /ready says so"
    async with running_stack(settings) as url, httpx.AsyncClient(base_url=url) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["collection"]["ok"]


async def test_readiness_names_redis_when_it_is_down(make_settings: SettingsFactory) -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:1/0")
    async with running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["failing"][0] == "redis"


async def test_metrics_count_turns_workers_and_relayed_events(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.post("/api/chat", json={"question": "What is a ROS 2 topic?"})).status_code == 200
        text = (await client.get("/metrics")).text
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"}
    assert samples["tutor_turns_started_total"] == 1
    assert samples["tutor_workers_alive"] == 1 and samples["tutor_ready"] == 1
    assert samples["tutor_relay_events_total"] >= 5, "accepted, sources, deltas, citations, done"


async def test_readiness_explains_a_first_indexing_that_fails(make_settings: SettingsFactory) -> None:
    async with serve_asgi(site_app(render_site(SAMPLE_BOOK, "/docs"))) as site:
        port = site.rsplit(":", 1)[1]
        # the classic mistake: the book's address by another name than the one the sitemap is read from
        # (with credentials in the source's URL, which the line must not repeat)
        source = f"http://reader:hunter2-secret@127.0.0.1:{port}/sitemap.xml?token=t0k3n"
        settings = make_settings(book_source=source, book_base_url=f"http://localhost:{port}/docs")
        async with running_worker(settings) as worker, running_gateway(settings) as url:
            await wait_event(worker.state.published_failure, 30)
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["collection"]
    assert body["explanation"] == (
        "indexing BOOK_SOURCE failed: no page to index: 10 of 10 skipped, 10 because host 127.0.0.1:"
        f"{port} is not BOOK_BASE_URL's host localhost:{port}; set BOOK_BASE_URL to the book's path alone"
        f" (like /docs) or on host 127.0.0.1:{port}"
    )
    assert "hunter2" not in response.text and "t0k3n" not in response.text


async def test_the_explanation_goes_once_the_first_indexing_succeeds(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    site_up = False
    sample = render_site(SAMPLE_BOOK, "/docs")

    async def serve_sitemap(request: Request) -> Response:
        if not site_up:
            return PlainTextResponse("not deployed yet", status_code=404)
        return sitemap(f"{str(request.base_url).rstrip('/')}{route}" for route in sample.pages)

    async with serve_asgi(site_app(sample, handlers={"/sitemap.xml": serve_sitemap})) as site:
        settings = make_settings(book_source=f"{site}/sitemap.xml", book_base_url="/docs")
        async with running_worker(settings) as worker, running_gateway(settings) as url:
            await wait_event(worker.state.published_failure, 30)
            async with httpx.AsyncClient(base_url=url) as client:
                failing = await client.get("/ready")
                site_up = True
                await worker_ready(worker)
                ready = await client.get("/ready")
    assert failing.json()["explanation"] == (
        "indexing BOOK_SOURCE failed: cannot read the sitemap: HTTP 404; check its address and that the site answers"
    )
    assert ready.status_code == 200 and ready.json()["explanation"] is None
    assert await redis.get(keys.INDEXING_FAILURE) is None
