"""Dense vectors for a build's chunks: from the embedding cache where possible, the rest from the embedder
in calls of at most ``EMBED_BATCH`` texts, with rate limits waited out for up to ``EMBED_PATIENCE_S``.

Every vector is checked (count, size, finite values) before anything is written, so a misconfigured model
fails the build while the serving version is untouched.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.protocol import ErrorCode
from worker.cohere.failures import ProviderFailure
from worker.knowledge.documents import Chunk
from worker.knowledge.embed_cache import EmbeddingCache, cache_key
from worker.knowledge.index_progress import ProgressReporter
from worker.knowledge.index_report import IndexingError

EMBED_BATCH = 96  # Cohere's embed endpoint takes at most 96 texts per request
EMBED_PATIENCE_S = 900.0  # how long rate limits are waited out, in total, before the job gives up
RATE_LIMIT_BACKOFF_S = 2.0
MAX_RATE_LIMIT_WAIT_S = 60.0


class DocumentEmbedder(Protocol):
    async def embed_documents(self, texts: list[str]) -> list[list[float]]: ...


@dataclass(frozen=True, slots=True)
class ChunkEmbedder:
    """Embeds chunks for one build, counting cached, embedded and rate-limited calls in its progress."""

    embedder: DocumentEmbedder
    reporter: ProgressReporter
    model: str
    size: int
    cache: EmbeddingCache | None
    patience_s: float = EMBED_PATIENCE_S
    backoff_s: float = RATE_LIMIT_BACKOFF_S

    async def embed(self, chunks: Sequence[Chunk]) -> list[list[float]]:
        """One vector per chunk, in order; equal texts are embedded once."""
        p = self.reporter.progress
        texts = [chunk.search_text for chunk in chunks]
        keys = [cache_key(self.model, self.size, "search_document", text) for text in texts]
        vectors: dict[str, list[float]] = {}
        if self.cache is not None:
            vectors = await self.cache.get_many(keys, self.size)
        p.embed_cached = sum(1 for key in keys if key in vectors)
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in vectors:
                missing.setdefault(key, text)
        pending = list(missing.items())
        for start in range(0, len(pending), EMBED_BATCH):
            batch = pending[start : start + EMBED_BATCH]
            embedded = await self._embed_patiently([text for _, text in batch])
            check_vectors(embedded, len(batch), self.size)
            for (key, _), vector in zip(batch, embedded, strict=True):
                vectors[key] = vector
            if self.cache is not None:
                await self.cache.put_many((key, vector) for (key, _), vector in zip(batch, embedded, strict=True))
            p.embedded += len(batch)
            await self.reporter.emit()
        return [vectors[key] for key in keys]

    async def _embed_patiently(self, texts: list[str]) -> list[list[float]]:
        waited = 0.0
        backoff = self.backoff_s
        while True:
            try:
                return await self.embedder.embed_documents(texts)
            except ProviderFailure as failure:
                if failure.code != ErrorCode.RATE_LIMITED:
                    raise IndexingError(f"embedding failed: {failure.message}") from failure
                delay = min(max(failure.retry_after or 0.0, backoff), MAX_RATE_LIMIT_WAIT_S)
                if waited + delay > self.patience_s:
                    raise IndexingError(
                        f"the embedding service kept rate limiting for {waited:.0f}s; try again later"
                    ) from failure
                self.reporter.progress.rate_limited_waits += 1
                await self.reporter.stage(f"embedding (rate limited; retrying in {delay:.1f}s)")
                await asyncio.sleep(delay)
                waited += delay
                backoff = min(backoff * 2, MAX_RATE_LIMIT_WAIT_S)
                await self.reporter.stage("embedding")


def check_vectors(vectors: list[list[float]], expected: int, size: int) -> None:
    """Refuse a batch with the wrong count, the wrong size, or NaN/infinite values."""
    if len(vectors) != expected:
        raise IndexingError(f"the embedder returned {len(vectors)} vectors for {expected} texts")
    for vector in vectors:
        if len(vector) != size:
            raise IndexingError(
                f"the embedder returned {len(vector)}-dimensional vectors, COHERE_EMBED_DIMENSION is {size}"
            )
        if not all(math.isfinite(x) for x in vector):
            raise IndexingError("the embedder returned a vector with NaN or infinite values")
