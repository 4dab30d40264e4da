"""How rare each word of the book is: the IDF that weighs a question's terms when deciding whether the book
covers it (worker/book_scope.py).

Qdrant applies IDF inside its BM25 scoring but does not hand it out, so the worker counts document
frequencies itself from the serving version's passages (a scroll and a tokenisation: well under a second for
a book of a thousand passages). The counts are kept per collection version and counted again when the alias
has moved to a new one (looked up at most every ``RECHECK_S``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass

from worker.knowledge.store import KnowledgeStore

RECHECK_S = 30.0


@dataclass(frozen=True)
class TermRarity:
    passages: int
    frequency: dict[str, int]

    def idf(self, term: str) -> float:
        """BM25's IDF (the form Qdrant uses); a word the book never uses is as rare as can be."""
        df = self.frequency.get(term, 0)
        return math.log((self.passages - df + 0.5) / (df + 0.5) + 1.0)


class BookVocabulary:
    def __init__(self, store: KnowledgeStore) -> None:
        self._store = store
        self._version: str | None = None
        self._rarity = TermRarity(0, {})
        self._checked = -math.inf
        self._lock = asyncio.Lock()

    async def rarity(self) -> TermRarity:
        if time.monotonic() - self._checked < RECHECK_S:
            return self._rarity
        async with self._lock:
            if time.monotonic() - self._checked < RECHECK_S:
                return self._rarity
            version = await self._store.versions.serving()
            if version is not None and version != self._version:
                self._rarity = await self._count(version)
                self._version = version
            self._checked = time.monotonic()
            return self._rarity

    async def _count(self, version: str) -> TermRarity:
        terms = self._store.encoder.terms
        frequency: Counter[str] = Counter()
        passages = 0
        async for batch in self._store.contents.section_texts(version):
            for title, heading, text in batch:
                frequency.update(set(terms(f"{title}\n{heading}\n{text}")))
                passages += 1
            await asyncio.sleep(0)  # a big book: let the answers streaming meanwhile go on
        return TermRarity(passages, dict(frequency))
