"""Embedding a build's chunks: batches of at most 96, the cache, rate limits waited out, bad vectors refused.
Through ``IndexBuild`` on real embedded Qdrant, so what was embedded is also what gets served."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from shared.protocol import ErrorCode
from tests.factories import SAMPLE_BOOK, HashEmbedder, chapter, index_build, write_book
from worker.cohere.failures import ProviderFailure
from worker.knowledge.chunk_embedding import EMBED_BATCH, check_vectors
from worker.knowledge.embed_cache import EmbeddingCache
from worker.knowledge.index_report import IndexingError
from worker.knowledge.standalone_indexing import index_book
from worker.knowledge.store import KnowledgeStore


async def test_embedding_runs_in_batches_of_at_most_96(store: KnowledgeStore, tmp_path: Path) -> None:
    sections = [(f"Part {i}", f"Actuator number {i} drives joint {i}.") for i in range(150)]
    book = write_book(tmp_path / "many", {"01-many.md": chapter("Many", *sections)})
    embedder = HashEmbedder()
    report = await index_book(store, book, "/docs", embedder)
    assert report.chunks == 150
    assert embedder.batches == [EMBED_BATCH, 150 - EMBED_BATCH]
    assert (await store.status()).points == 150


async def test_bad_embedder_fails_before_touching_the_collection(store: KnowledgeStore) -> None:
    report = await index_book(store, SAMPLE_BOOK, "/docs", None)
    with pytest.raises(IndexingError, match="32-dimensional"):
        await index_book(store, SAMPLE_BOOK, "/docs", HashEmbedder(32))
    status = await store.status()
    assert status.points == report.chunks and not status.has_dense


def test_vectors_are_checked_for_count_size_and_finite_values() -> None:
    check_vectors([[0.6, 0.8]], 1, 2)
    with pytest.raises(IndexingError, match="1 vectors for 2 texts"):
        check_vectors([[0.6, 0.8]], 2, 2)
    with pytest.raises(IndexingError, match="3-dimensional"):
        check_vectors([[0.1, 0.2, 0.3]], 1, 2)
    with pytest.raises(IndexingError, match="NaN or infinite"):
        check_vectors([[math.nan, 1.0]], 1, 2)
    with pytest.raises(IndexingError, match="NaN or infinite"):
        check_vectors([[math.inf, 1.0]], 1, 2)


async def test_unchanged_chunks_are_never_embedded_twice(store: KnowledgeStore, book: Path, tmp_path: Path) -> None:
    cache = await EmbeddingCache.open(tmp_path / "cache.sqlite3")
    try:
        embedder = HashEmbedder()
        first = index_build(store, book, embedder=embedder, cache=cache, embed_model="embed-test")
        await first.run()
        assert first.progress.embedded == 6 and first.progress.embed_cached == 0
        assert await cache.count() == 6

        second = index_build(store, book, embedder=embedder, cache=cache, embed_model="embed-test")
        await second.run()
        assert second.progress.embedded == 0 and second.progress.embed_cached == 6
        assert sum(embedder.batches) == 6  # the embedder saw each chunk once

        (book / "01-basics/01-actuators.md").write_text(
            chapter(
                "Actuators",
                ("Electric motors", "Brushless motors turn current into torque for each humanoid joint."),
                ("Hydraulics", "Series elastic actuators add a spring between motor and load."),
            ),
            encoding="utf-8",
        )
        third = index_build(store, book, embedder=embedder, cache=cache, embed_model="embed-test")
        await third.run()
        assert (third.progress.embedded, third.progress.embed_cached) == (1, 5)

        other_model = index_build(store, book, embedder=embedder, cache=cache, embed_model="embed-other")
        await other_model.run()
        assert other_model.progress.embedded == 6  # the cache is per model
    finally:
        await cache.close()


class RateLimitedEmbedder(HashEmbedder):
    def __init__(self, limited_calls: int) -> None:
        super().__init__()
        self.limited_calls = limited_calls
        self.refused = 0

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.refused < self.limited_calls:
            self.refused += 1
            raise ProviderFailure(ErrorCode.RATE_LIMITED, "rate limited", retry_after=0.01)
        return await super().embed_documents(texts)


async def test_rate_limits_are_waited_out(store: KnowledgeStore, book: Path) -> None:
    embedder = RateLimitedEmbedder(limited_calls=3)
    job = index_build(store, book, embedder=embedder, rate_limit_backoff_s=0.01)
    await job.run()
    assert job.progress.status == "complete" and job.progress.rate_limited_waits == 3
    assert job.progress.embedded == 6


async def test_endless_rate_limiting_gives_up_and_keeps_the_old_version(store: KnowledgeStore, book: Path) -> None:
    good = await index_build(store, book, embedder=HashEmbedder()).run()
    job = index_build(
        store, book, embedder=RateLimitedEmbedder(limited_calls=1000), rate_limit_backoff_s=0.01, embed_patience_s=0.1
    )
    with pytest.raises(IndexingError, match="kept rate limiting"):
        await job.run()
    assert job.progress.rate_limited_waits >= 3
    assert await store.versions.names() == [good.collection]
