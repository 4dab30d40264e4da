"""HISTORY_RETENTION_DAYS: conversations idle longer are purged, at start and then every hour, by every
worker (a purge is idempotent, so several at once only repeat each other's deletes)."""

from __future__ import annotations

import asyncio
import logging

from shared.db.conversations import purge_idle_conversations
from shared.db.database import Database

logger = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0


async def purge_history_periodically(database: Database, retention_days: int, every_s: float = PURGE_EVERY_S) -> None:
    await database.schema_ready.wait()
    while True:
        try:
            purged = await purge_idle_conversations(database.sessions, retention_days)
            if purged:
                logger.info("purged %d conversations idle for over %d days", purged, retention_days)
        except Exception as exc:
            logger.warning("history purge failed (%s); trying again later", type(exc).__name__)
        await asyncio.sleep(every_s)
