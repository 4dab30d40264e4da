"""``GET /api/admin/gaps`` (``ADMIN_TOKEN``, as the rest of /api/admin): what readers look for that the book
lacks, from history (shared/db/gaps.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway.admin_access import AdminAccessDep
from gateway.admin_history_routes import _COMMON
from gateway.admin_routes import _denied
from gateway.services import ServicesDep
from shared.db.gaps import book_gaps

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/gaps", responses=_COMMON)
async def gaps(
    services: ServicesDep,
    access: AdminAccessDep,
    days: Annotated[int, Query(ge=1, le=3660, description="the window, ending now")] = 30,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many groups, the largest first")] = 50,
) -> Any:
    """The questions the tutor declined and the answers readers rated down, grouped by similar wording: each
    group's most frequent wording, counts (declined, rated down), up to 3 wordings, the nearest chapter and
    when it was last asked."""
    if (denied := _denied(access)) is not None:
        return denied
    sessions = await services.database.ready_sessions()
    async with sessions() as session:
        return await book_gaps(session, days, limit)
