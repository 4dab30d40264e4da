"""The outline of every served document, read in one pass per collection version and kept.

Each answer's follow-up suggestions look up the outline of the documents it drew on. Embedded Qdrant answers
a filtered scroll by testing every point of the collection in Python, so reading an outline per turn was a
tenth of a busy worker's time (bench/analysis.md, item 25). The outlines change only with a new version: the
alias is looked up at most every ``RECHECK_S``, as for the book's vocabulary.
"""

from __future__ import annotations

import asyncio
import math
import time

from worker.knowledge.store import KnowledgeStore

RECHECK_S = 30.0


class BookOutlines:
    def __init__(self, store: KnowledgeStore) -> None:
        self._store = store
        self._version: str | None = None
        self._outlines: dict[str, list[tuple[str, str]]] = {}
        self._checked = -math.inf
        self._lock = asyncio.Lock()

    async def outline(self, doc: str) -> list[tuple[str, str]]:
        """The sections of ``doc`` in reading order, as (heading path, url); empty for a document not served."""
        return (await self._current()).get(doc, [])

    async def _current(self) -> dict[str, list[tuple[str, str]]]:
        if time.monotonic() - self._checked < RECHECK_S:
            return self._outlines
        async with self._lock:
            if time.monotonic() - self._checked < RECHECK_S:
                return self._outlines
            version = await self._store.versions.serving()
            if version is not None and version != self._version:
                self._outlines = await self._store.contents.outlines(version)
                self._version = version
            self._checked = time.monotonic()
            return self._outlines
