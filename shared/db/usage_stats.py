"""Usage figures for the admin: turns per day, by provider and by outcome, ratings, and the time to first
delta and whole turn (p50/p95). Percentiles are read with ORDER BY … OFFSET, which both backends run on
the same index-free scan; the window keeps it bounded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Feedback, Turn, utc_now


def _day(session: AsyncSession) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Turn.created_at), "YYYY-MM-DD")
    return func.substr(Turn.created_at, 1, 10)  # SQLite keeps "YYYY-MM-DD HH:MM:SS" in UTC


async def _percentiles(session: AsyncSession, column: Any, since: Any) -> dict[str, float | None]:
    present = [Turn.created_at >= since, column.is_not(None), Turn.status == "done"]
    count = int(await session.scalar(select(func.count()).select_from(Turn).where(*present)) or 0)
    result: dict[str, float | None] = {}
    for name, share in (("p50", 0.50), ("p95", 0.95)):
        if count == 0:
            result[name] = None
            continue
        offset = min(count - 1, int(share * count))
        value = await session.scalar(select(column).where(*present).order_by(column).offset(offset).limit(1))
        result[name] = round(float(value), 1) if value is not None else None
    return result


async def usage_stats(session: AsyncSession, days: int = 30) -> dict[str, Any]:
    since = utc_now() - timedelta(days=days)
    recent = Turn.created_at >= since
    day = _day(session).label("day")
    per_day = (await session.execute(select(day, func.count()).where(recent).group_by(day).order_by(day))).all()
    by_provider = (
        await session.execute(select(Turn.provider, func.count()).where(recent).group_by(Turn.provider))
    ).all()
    by_status = (await session.execute(select(Turn.status, func.count()).where(recent).group_by(Turn.status))).all()
    ratings = (
        await session.execute(
            select(Feedback.rating, func.count()).where(Feedback.updated_at >= since).group_by(Feedback.rating)
        )
    ).all()
    rated = {str(rating): int(n) for rating, n in ratings}
    return {
        "days": days,
        "since": since.isoformat(),
        "turns": sum(int(n) for _, n in per_day),
        "turns_per_day": [{"day": str(d), "turns": int(n)} for d, n in per_day],
        "by_provider": {str(p): int(n) for p, n in by_provider},
        "by_status": {str(s): int(n) for s, n in by_status},
        "ratings": {"up": rated.get("up", 0), "down": rated.get("down", 0)},
        "first_delta_ms": await _percentiles(session, Turn.first_delta_ms, since),
        "turn_ms": await _percentiles(session, Turn.total_ms, since),
    }
