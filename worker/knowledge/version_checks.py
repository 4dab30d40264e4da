"""Checks of a collection version: does the serving one fit what the worker wants, and does a freshly
built one hold exactly what was written (point count, and a probe query that must find a known chunk)."""

from __future__ import annotations

from collections.abc import Sequence

from qdrant_client import models

from worker.knowledge.collection_status import CollectionStatus
from worker.knowledge.documents import Chunk
from worker.knowledge.index_report import IndexingError
from worker.knowledge.point_layout import DENSE_DISTANCE, point_id
from worker.knowledge.qdrant_errors import KnowledgeStoreError
from worker.knowledge.store import KnowledgeStore

PROBE_DEPTH = 10


def schema_mismatch(status: CollectionStatus, *, want_dense: bool, dense_size: int) -> str | None:
    """Why an existing collection's vectors do not fit (None: they do)."""
    if not status.has_sparse:
        return "it has no bm25 sparse vector"
    if status.has_dense != want_dense:
        return "dense vectors are now wanted" if want_dense else "dense vectors are no longer wanted"
    if want_dense and status.dense_size != dense_size:
        return f"the dense size changed ({status.dense_size} -> {dense_size})"
    if want_dense and status.dense_distance != DENSE_DISTANCE.value:
        return f"dense vectors are compared by {status.dense_distance}, not {DENSE_DISTANCE.value}"
    return None


async def reason_to_index(store: KnowledgeStore, want_dense: bool) -> str | None:
    """Why the serving collection cannot be used as it is (None: it can): missing, empty, or vectors that
    do not fit. Raises ``KnowledgeStoreError`` when Qdrant cannot be asked."""
    status = await store.status()
    if status.error is not None:
        raise KnowledgeStoreError(status.error)
    if not status.exists:
        return "collection missing"
    if status.points == 0:
        return "collection empty"
    return schema_mismatch(status, want_dense=want_dense, dense_size=store.dense_size)


async def verify_version(
    store: KnowledgeStore,
    name: str,
    chunks: Sequence[Chunk],
    sparse: Sequence[models.SparseVector],
    vectors: Sequence[Sequence[float]] | None,
    *,
    count: int,
    expected: int,
) -> None:
    """Check that version ``name`` holds ``expected`` points (it holds ``count``) and that a search finds
    one of ``chunks`` (with its ``sparse`` and dense ``vectors``) there; ``IndexingError`` otherwise."""
    if count != expected:
        raise IndexingError(f"the new version holds {count} points, {expected} were written")
    if count == 0:
        raise IndexingError("the new version is empty")
    probe = next((i for i, vector in enumerate(sparse) if len(vector.indices) >= 3), None)
    if probe is None:
        return  # only copied points (whose count was checked) or chunks without keywords
    chunk = chunks[probe]
    found = await store.search(
        chunk.search_text,
        vectors[probe] if vectors is not None else None,
        PROBE_DEPTH,
        collection=name,
    )
    if point_id(chunk.doc, chunk.position) not in {passage.id for passage in found}:
        raise IndexingError(f"the probe query did not find {chunk.doc} #{chunk.position} in the new version")
