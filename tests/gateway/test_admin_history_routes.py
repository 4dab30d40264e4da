"""The admin's feedback export (JSONL, CSV) and usage figures, on SQLite and on Postgres behind PgBouncer."""

from __future__ import annotations

import csv
import io
import time

import httpx
import orjson
import pytest

from shared.db.database import Database
from shared.db.feedback import save_feedback
from shared.db.turn_history import write_turns
from shared.protocol import FeedbackFields
from tests.conftest import SettingsFactory
from tests.factories import a_reader, a_turn_record
from tests.stack import running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "pgbouncer"], indirect=True)

ADMIN = "admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def rated_history(database: Database) -> list[str]:
    reader_id, _ = await a_reader(database)
    now = time.time()
    records = [
        a_turn_record(reader_id=reader_id, question='=HYPERLINK("x")', first_delta_ms=10.0, total_ms=100.0),
        a_turn_record(reader_id=reader_id, provider="cohere", first_delta_ms=30.0, total_ms=300.0),
        a_turn_record(reader_id=reader_id, status="provider_error", answer="", first_delta_ms=None, total_ms=50.0),
        a_turn_record(reader_id=reader_id, asked_at=now - 40 * 86400, finished_at=now - 40 * 86400 + 1),
    ]
    await write_turns(database.sessions, records)
    await save_feedback(database.sessions, reader_id, records[0].turn_id, FeedbackFields(rating="down", reason="wrong"))
    await save_feedback(database.sessions, reader_id, records[1].turn_id, FeedbackFields(rating="up", comment="good"))
    return [r.turn_id for r in records]


async def test_feedback_exports_as_jsonl_and_csv(
    make_settings: SettingsFactory, database_url: str | None, database: Database
) -> None:
    turn_ids = await rated_history(database)
    settings = make_settings(database_url=database_url, admin_token=ADMIN)
    async with running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as api:
        lines = (await api.get("/api/admin/feedback", headers=AUTH)).text.splitlines()
        down = (await api.get("/api/admin/feedback", headers=AUTH, params={"rating": "down"})).text
        future = (await api.get("/api/admin/feedback", headers=AUTH, params={"since": "2999-01-01T00:00:00Z"})).text
        table = await api.get("/api/admin/feedback", headers=AUTH, params={"format": "csv"})
        no_token = await api.get("/api/admin/feedback")
        bad_rating = await api.get("/api/admin/feedback", headers=AUTH, params={"rating": "meh"})
    rows = [orjson.loads(line) for line in lines]
    assert {r["turn_id"] for r in rows} == set(turn_ids[:2])
    first = next(r for r in rows if r["turn_id"] == turn_ids[0])
    assert first["rating"] == "down" and first["reason"] == "wrong" and first["answer"] and first["sources"]
    assert [orjson.loads(line)["turn_id"] for line in down.splitlines()] == [turn_ids[0]]
    assert future == ""
    assert table.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(table.text)))
    assert {r["turn_id"] for r in parsed} == set(turn_ids[:2])
    question = next(r for r in parsed if r["turn_id"] == turn_ids[0])["question"]
    assert question.startswith("'="), "a cell a spreadsheet would run is quoted"
    assert no_token.status_code == 401 and bad_rating.status_code == 422


async def test_stats_count_turns_outcomes_ratings_and_percentiles(
    make_settings: SettingsFactory, database_url: str | None, database: Database
) -> None:
    await rated_history(database)
    settings = make_settings(database_url=database_url, admin_token=ADMIN)
    async with running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as api:
        stats = (await api.get("/api/admin/stats", headers=AUTH)).json()
        longer = (await api.get("/api/admin/stats", headers=AUTH, params={"days": 60})).json()
    assert stats["turns"] == 3 and longer["turns"] == 4, "the 40-day-old turn is outside 30 days"
    assert stats["by_provider"] == {"offline": 2, "cohere": 1}
    assert stats["by_status"] == {"done": 2, "provider_error": 1}
    assert stats["ratings"] == {"up": 1, "down": 1}
    assert sum(day["turns"] for day in stats["turns_per_day"]) == 3
    assert stats["first_delta_ms"] == {"p50": 30.0, "p95": 30.0}
    assert stats["turn_ms"] == {"p50": 300.0, "p95": 300.0}


async def test_admin_history_is_off_without_an_admin_token(
    make_settings: SettingsFactory, database_url: str | None
) -> None:
    async with running_gateway(make_settings(database_url=database_url)) as url, httpx.AsyncClient(base_url=url) as api:
        assert (await api.get("/api/admin/feedback")).status_code == 404
        assert (await api.get("/api/admin/stats")).status_code == 404
