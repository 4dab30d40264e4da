"""What a collection looks like, as the heartbeat and the start-up check read it."""

from __future__ import annotations

from pathlib import Path

from tests.factories import DIM, HashEmbedder, index_build
from worker.knowledge.store import KnowledgeStore


async def test_a_missing_collection_is_reported_as_such_with_where_it_was_looked_for(store: KnowledgeStore) -> None:
    status = await store.status()
    assert (status.exists, status.points, status.has_dense, status.error) == (False, 0, False, None)
    assert status.location == store.location


async def test_the_alias_names_its_version_and_the_version_its_vectors(store: KnowledgeStore, book: Path) -> None:
    report = await index_build(store, book, embedder=HashEmbedder()).run()
    assert report.collection is not None
    served = await store.status()
    assert served.exists and served.serving == report.collection and served.points == 6
    assert (served.has_sparse, served.has_dense, served.dense_size, served.dense_distance) == (True, True, DIM, "Dot")
    version = await store.status(report.collection)
    assert version.points == 6 and version.serving is None  # a version is not an alias


async def test_a_keyword_only_version_has_no_dense_vector(store: KnowledgeStore, book: Path) -> None:
    await index_build(store, book, embedder=None).run()
    status = await store.status()
    assert status.has_sparse and not status.has_dense
    assert (status.dense_size, status.dense_distance) == (None, None)
