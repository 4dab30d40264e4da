"""What a collection looks like: whether it exists, its points and its vectors, or why Qdrant cannot say.

``/ready`` (through the worker's heartbeat) and the decision to index at start-up read it, so it never
raises for an unreachable Qdrant: it says so in ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.knowledge.point_layout import DENSE_VECTOR, SPARSE_VECTOR
from worker.knowledge.qdrant_backends import QdrantBackend
from worker.knowledge.qdrant_errors import QdrantErrors


@dataclass(frozen=True, slots=True)
class CollectionStatus:
    exists: bool
    points: int
    has_dense: bool
    location: str  # "local:/path" or "host:port"
    error: str | None = None  # Qdrant could not be asked; the other fields are then defaults
    has_sparse: bool = False
    dense_size: int | None = None
    serving: str | None = None  # the versioned collection the alias points at (None: a plain collection)
    dense_distance: str | None = None


async def read_status(backend: QdrantBackend, errors: QdrantErrors, name: str, *, alias: str) -> CollectionStatus:
    """The status of collection ``name``; when it is the ``alias``, also the version it points at."""
    location = errors.location
    serving: str | None = None
    try:
        if not await backend.collection_exists(name):
            return CollectionStatus(exists=False, points=0, has_dense=False, location=location)
        info = await backend.get_collection(name)
        points = await backend.count(name)
        if name == alias:
            serving = (await backend.aliases()).get(name)
    except Exception as exc:
        return CollectionStatus(exists=False, points=0, has_dense=False, location=location, error=errors.describe(exc))
    vectors = info.config.params.vectors
    dense = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
    sparse = info.config.params.sparse_vectors or {}
    return CollectionStatus(
        exists=True,
        points=points,
        has_dense=dense is not None,
        location=location,
        has_sparse=SPARSE_VECTOR in sparse,
        dense_size=dense.size if dense is not None else None,
        serving=serving,
        dense_distance=str(dense.distance.value) if dense is not None else None,
    )
