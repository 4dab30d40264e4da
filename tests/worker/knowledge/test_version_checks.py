"""Does a collection fit what the worker wants, and does a new version hold what was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import DIM, index_build
from worker.knowledge.collection_status import CollectionStatus
from worker.knowledge.index_report import IndexingError
from worker.knowledge.markdown_chunks import chunk_book
from worker.knowledge.standalone_indexing import index_book
from worker.knowledge.store import KnowledgeStore
from worker.knowledge.version_checks import reason_to_index, schema_mismatch, verify_version


def status(**fields: object) -> CollectionStatus:
    values: dict[str, object] = {
        "exists": True,
        "points": 10,
        "has_dense": True,
        "location": "local:/x",
        "has_sparse": True,
        "dense_size": DIM,
        "dense_distance": "Dot",
    }
    values.update(fields)
    return CollectionStatus(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "want_dense", "reason"),
    [
        ({}, True, None),
        ({"has_dense": False, "dense_size": None, "dense_distance": None}, False, None),
        ({"has_sparse": False}, True, "it has no bm25 sparse vector"),
        ({"has_dense": False}, True, "dense vectors are now wanted"),
        ({}, False, "dense vectors are no longer wanted"),
        ({"dense_size": 32}, True, f"the dense size changed (32 -> {DIM})"),
        ({"dense_distance": "Cosine"}, True, "dense vectors are compared by Cosine, not Dot"),
    ],
)
def test_schema_mismatch_names_what_does_not_fit(
    fields: dict[str, object], want_dense: bool, reason: str | None
) -> None:
    found = schema_mismatch(status(**fields), want_dense=want_dense, dense_size=DIM)
    assert found == reason


async def test_a_missing_then_empty_then_usable_collection(store: KnowledgeStore, book: Path) -> None:
    assert await reason_to_index(store, want_dense=False) == "collection missing"
    name = store.versions.new_name()
    await store.versions.create(name, dense=False)
    await store.versions.switch_to(name, dense=False)
    assert await reason_to_index(store, want_dense=False) == "collection empty"
    await index_build(store, book, embedder=None).run()
    assert await reason_to_index(store, want_dense=False) is None


async def test_a_version_missing_points_or_the_probe_is_refused(store: KnowledgeStore, book: Path) -> None:
    report = await index_book(store, book, "/docs", None)
    assert report.collection is not None
    chunks = chunk_book(book, "/docs").chunks
    sparse = store.encode_documents(chunks)
    await verify_version(store, report.collection, chunks, sparse, None, count=6, expected=6)
    with pytest.raises(IndexingError, match="holds 6 points, 7 were written"):
        await verify_version(store, report.collection, chunks, sparse, None, count=6, expected=7)
    empty = store.versions.new_name()
    await store.versions.create(empty, dense=False)
    with pytest.raises(IndexingError, match="the probe query did not find"):
        await verify_version(store, empty, chunks, sparse, None, count=6, expected=6)
