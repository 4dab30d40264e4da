"""The admin API over real HTTP: off without ADMIN_TOKEN, 401 without the right one, and a re-index that
runs in the worker while the chat keeps answering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from eval.docusaurus_site import render_site, site_app
from fake_cohere.testing import serve_asgi
from tests.conftest import SettingsFactory
from tests.factories import SAMPLE_BOOK
from tests.stack import chat, running_gateway, running_stack

TOKEN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CORPORA = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora"


@pytest.fixture(autouse=True)
async def clean_redis(redis: Redis) -> AsyncIterator[None]:
    """Start from an empty Redis, and leave no re-index lock or queued job behind for tests that do not
    flush it (a stale lock would hold up their worker's first indexing)."""
    yield
    await redis.flushall()


async def finished(client: httpx.AsyncClient, job_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """Read the job's status until it ends (the API has nothing to wait on but the status itself)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = await client.get(f"/api/admin/reindex/{job_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in {"complete", "failed"}:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"re-index {job_id} did not finish")


async def test_the_admin_api_is_off_without_a_token(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        responses = [
            await client.post("/api/admin/reindex", headers=AUTH),
            await client.get("/api/admin/reindex", headers=AUTH),
            await client.get(f"/api/admin/reindex/{'0' * 32}", headers=AUTH),
            await client.delete(f"/api/admin/reindex/{'0' * 32}", headers=AUTH),
        ]
    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert all(r.json() == {"detail": "Not Found"} for r in responses)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token-00"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
)
async def test_no_or_a_wrong_token_is_refused(make_settings: SettingsFactory, headers: dict[str, str]) -> None:
    async with (
        running_gateway(make_settings(admin_token=TOKEN)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        post = await client.post("/api/admin/reindex", headers=headers)
        get = await client.get(f"/api/admin/reindex/{'0' * 32}", headers=headers)
    for response in (post, get):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
        assert TOKEN not in response.text


async def test_bad_requests_are_refused_before_anything_is_queued(make_settings: SettingsFactory) -> None:
    async with (
        running_gateway(make_settings(admin_token=TOKEN)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        scheme = await client.post("/api/admin/reindex", headers=AUTH, json={"source": "file:///etc/passwd"})
        mode = await client.post("/api/admin/reindex", headers=AUTH, json={"mode": "sideways"})
        extra = await client.post("/api/admin/reindex", headers=AUTH, json={"source": "/x", "force": True})
        bad_id = await client.get("/api/admin/reindex/not-a-job", headers=AUTH)
        unknown = await client.get(f"/api/admin/reindex/{'a' * 32}", headers=AUTH)
        latest = await client.get("/api/admin/reindex", headers=AUTH)
    assert (scheme.status_code, mode.status_code, extra.status_code, bad_id.status_code) == (422, 422, 422, 422)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_job"
    assert latest.status_code == 404


@pytest.fixture
async def held_site() -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Event]]:
    """The sample book as a site whose sitemap answers only once ``release`` is set: a re-index from it
    stays in its first stage for as long as the test wants. Yields (sitemap URL, requested, release)."""
    site = render_site(SAMPLE_BOOK, "/docs")
    requested, release = asyncio.Event(), asyncio.Event()
    plain = site_app(site)

    async def sitemap(request: Request) -> Response:
        requested.set()
        await release.wait()
        response: Response = await plain.router.routes[0].endpoint(request)  # type: ignore[attr-defined]
        return response

    async with serve_asgi(site_app(site, handlers={"/sitemap.xml": sitemap})) as url:
        try:
            yield f"{url}/sitemap.xml", requested, release
        finally:
            release.set()


async def test_a_reindex_is_queued_followed_and_refused_while_one_runs(
    make_settings: SettingsFactory, held_site: tuple[str, asyncio.Event, asyncio.Event]
) -> None:
    sitemap, requested, release = held_site
    settings = make_settings(admin_token=TOKEN, book_source=str(SAMPLE_BOOK))
    async with running_stack(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        started = await client.post("/api/admin/reindex", headers=AUTH, json={"source": sitemap})
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        assert started.json()["status_url"] == f"/api/admin/reindex/{job_id}" == started.headers["location"]
        await requested.wait()  # the worker is reading the sitemap now

        busy = await client.post("/api/admin/reindex", headers=AUTH)
        assert busy.status_code == 409
        assert busy.json()["error"] == {
            "code": "reindex_running",
            "message": "a re-index is already running",
            "job_id": job_id,
        }
        running = (await client.get(f"/api/admin/reindex/{job_id}", headers=AUTH)).json()
        assert (running["status"], running["stage"], running["source"]) == ("running", "reading", sitemap)

        release.set()
        done = await finished(client, job_id)
        assert done["status"] == "complete", done
        assert done["documents"] == 6 and done["skipped_count"] == 4 and done["points"] == done["upserted"]
        assert (await client.get("/api/admin/reindex", headers=AUTH)).json()["job_id"] == job_id

        # the new version serves: sources now point at the site's pages
        reply = await client.post("/api/chat", json={"question": "What does a URDF describe?"})
        assert reply.status_code == 200
        assert all(s["url"].startswith(sitemap.removesuffix("/sitemap.xml")) for s in reply.json()["sources"])

        again = await client.post("/api/admin/reindex", headers=AUTH, json={"mode": "incremental"})
        assert again.status_code == 202
        assert (await finished(client, again.json()["job_id"]))["status"] == "complete"


async def test_a_cancelled_reindex_leaves_the_old_version_serving(
    make_settings: SettingsFactory, held_site: tuple[str, asyncio.Event, asyncio.Event]
) -> None:
    sitemap, requested, _ = held_site
    settings = make_settings(admin_token=TOKEN, book_source=str(SAMPLE_BOOK))
    async with running_stack(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        job_id = (await client.post("/api/admin/reindex", headers=AUTH, json={"source": sitemap})).json()["job_id"]
        await requested.wait()
        cancelled = await client.delete(f"/api/admin/reindex/{job_id}", headers=AUTH)
        assert cancelled.status_code == 202
        report = await finished(client, job_id)
        assert report["status"] == "failed" and "cancelled" in report["error"]
        assert (await client.delete(f"/api/admin/reindex/{job_id}", headers=AUTH)).status_code == 409

        reply = await client.post("/api/chat", json={"question": "What does a URDF describe?"})
        assert reply.status_code == 200
        assert reply.json()["sources"][0]["url"].startswith("/docs/")  # still the folder's version
        # the lock went with the job
        assert (await client.post("/api/admin/reindex", headers=AUTH)).status_code == 202


@pytest.mark.parametrize("provider", ["offline", "cohere"])
async def test_questions_keep_being_answered_while_the_book_is_reindexed(
    provider: str, make_settings: SettingsFactory, cohere_settings: SettingsFactory
) -> None:
    factory = cohere_settings if provider == "cohere" else make_settings
    settings = factory(admin_token=TOKEN, book_source=str(SAMPLE_BOOK))
    questions = [
        "What is a ROS 2 topic?",
        "How does a humanoid keep its balance?",
        "What does a URDF describe?",
        "What is sim-to-real transfer?",
    ]
    turns: list[tuple[float, float, dict[str, Any]]] = []  # (asked, ended, terminal event)
    reindexing = asyncio.Event()
    stop = asyncio.Event()

    async def keep_asking(url: str, offset: int) -> None:
        async with chat(url) as client:
            asked = 0
            while not stop.is_set() or asked < 3:
                started = time.time()
                turn = await client.ask(questions[(offset + asked) % len(questions)])
                turns.append((started, time.time(), turn.terminal | {"sources": turn.of("sources")}))
                asked += 1

    async with running_stack(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as admin:
        askers = [asyncio.create_task(keep_asking(url, i)) for i in range(3)]
        jobs: list[dict[str, Any]] = []
        try:
            # a bigger book, back to the sample, then an incremental pass: three alias switches
            for body in (
                {"source": str(CORPORA / "book-b")},
                {"source": str(SAMPLE_BOOK)},
                {"source": str(SAMPLE_BOOK), "mode": "incremental"},
            ):
                response = await admin.post("/api/admin/reindex", headers=AUTH, json=body)
                assert response.status_code == 202, response.text
                reindexing.set()
                jobs.append(await finished(admin, response.json()["job_id"]))
        finally:
            stop.set()
            await asyncio.gather(*askers)
    assert [job["status"] for job in jobs] == ["complete", "complete", "complete"], jobs
    failures = [terminal for _, _, terminal in turns if terminal["type"] != "done"]
    assert failures == [], failures
    assert all(terminal["sources"] and terminal["sources"][0]["sources"] for _, _, terminal in turns)
    # and questions really were in flight while versions were being built and switched
    windows = [(job["started_at"], job["finished_at"]) for job in jobs]
    overlapping = [t for t in turns if any(t[0] <= end and t[1] >= start for start, end in windows)]
    assert len(overlapping) >= 3, (len(turns), windows)
