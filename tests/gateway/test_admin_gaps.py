"""``GET /api/admin/gaps``: the questions the tutor declined and the answers rated down, grouped by wording,
through the real worker, its history writer and the gateway, on SQLite and on Postgres behind PgBouncer."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SettingsFactory
from tests.stack import chat, running_gateway, running_worker, worker_ready

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "pgbouncer"], indirect=True)
TOKEN = "gaps-admin-token-0123456789"


async def test_gaps_group_declined_questions_and_rated_down_answers(
    make_settings: SettingsFactory, database_url: str | None
) -> None:
    settings = make_settings(database_url=database_url, admin_token=TOKEN)
    async with running_worker(settings) as worker, running_gateway(settings) as url:
        await worker_ready(worker)
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            reader = (await api.post("/api/readers")).json()["reader_token"]
            async with chat(url) as client:
                await client.send({"type": "hello", "reader_token": reader})
                assert (await client.receive())["type"] == "welcome"
                asked = [
                    await client.ask("What's the weather like in Paris today?"),
                    await client.ask("How is the weather in Paris today?"),
                    await client.ask("hi"),  # small talk: not a gap
                    await client.ask("What is a ROS 2 topic?"),
                ]
                assert [t.terminal["grounded"] for t in asked] == [False, False, False, True]
            assert worker.state.history_writer is not None
            await worker.state.history_writer.wait_written(len(asked))  # a turn is rated once it is stored
            rated = await api.put(
                f"/api/turns/{asked[3].turn_id}/feedback",
                headers={"Authorization": f"Bearer {reader}"},
                json={"rating": "down", "reason": "unclear"},
            )
            assert rated.status_code in (200, 204), rated.text
            refused = await api.get("/api/admin/gaps")
            found = await api.get("/api/admin/gaps", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 401
    assert found.status_code == 200, found.text
    groups = found.json()["groups"]
    assert len(groups) == 2, groups
    weather, topic = groups
    assert weather["count"] == weather["declined"] == 2 and weather["rated_down"] == 0
    assert set(weather["wordings"]) == {"What's the weather like in Paris today?", "How is the weather in Paris today?"}
    assert weather["nearest_chapter"]["url"].startswith("/docs/")
    assert topic == {
        **topic,
        "question": "What is a ROS 2 topic?",
        "count": 1,
        "declined": 0,
        "rated_down": 1,
    }
    assert "topic" in topic["nearest_chapter"]["doc"]
