"""The admin's view of history (``ADMIN_TOKEN``, as the rest of /api/admin): readers' ratings exported as
JSONL or CSV with the question, answer and sources (ready to become an evaluation set), and usage figures."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from gateway.admin_access import AdminAccessDep
from gateway.admin_routes import _denied
from gateway.services import ServicesDep
from shared.db.feedback import feedback_export
from shared.db.usage_stats import usage_stats

router = APIRouter(prefix="/api/admin", tags=["admin"])

CSV_COLUMNS = [
    "turn_id",
    "conversation_id",
    "rated_at",
    "rating",
    "reason",
    "comment",
    "question",
    "selected_text",
    "answer",
    "sources",
    "provider",
    "status",
]
_COMMON: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or wrong admin token"},
    429: {"description": "Too many failed attempts from this address"},
    404: {"description": "Admin API off (ADMIN_TOKEN unset)"},
    503: {"description": "The database is unavailable"},
}


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # a spreadsheet must not run a cell as a formula
    return value


@router.get("/feedback", responses={**_COMMON, 200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}})
async def export_feedback(
    services: ServicesDep,
    access: AdminAccessDep,
    rating: Literal["up", "down"] | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; ratings given or changed since")] = None,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> Any:
    """Every rating (filtered by rating and date), oldest first, with the turn it rates."""
    if (denied := _denied(access)) is not None:
        return denied
    rows = await feedback_export(await services.database.ready_sessions(), rating, since)
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row[k]) for k in CSV_COLUMNS})
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="feedback.csv"'},
        )
    body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    return Response(body, media_type="application/x-ndjson")


@router.get("/stats", responses=_COMMON)
async def stats(
    services: ServicesDep,
    access: AdminAccessDep,
    days: Annotated[int, Query(ge=1, le=3660, description="the window, ending now")] = 30,
) -> Any:
    """Turns per day, by provider and by outcome (`done` or the error code), ratings up/down, and the p50
    and p95 of the time to first delta and of the whole turn (milliseconds, from the ask)."""
    if (denied := _denied(access)) is not None:
        return denied
    sessions = await services.database.ready_sessions()
    async with sessions() as session:
        return await usage_stats(session, days)
