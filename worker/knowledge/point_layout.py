"""How the book's chunks are laid out as Qdrant points, and read back as passages.

A collection holds a sparse vector ``bm25`` (IDF applied by Qdrant) and, when the book was embedded, a
dense vector ``dense`` at unit length. Point ids are derived from the document and the chunk's position, so
writing the same book again overwrites rather than duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
from qdrant_client import models

from worker.knowledge.documents import Chunk, Passage

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"
# Dense vectors are stored at unit length, so the dot product is the cosine similarity. Qdrant's COSINE
# would give the same ranking, but embedded mode re-normalises the whole matrix on every query; DOT is one
# matrix-vector product.
DENSE_DISTANCE = models.Distance.DOT
_POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "physical-ai-tutor/book-chunk")


def point_id(doc: str, position: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc}#{position}"))


def unit_vector(values: Sequence[float]) -> list[float]:
    """``values`` scaled to length 1 (the zero vector stays zero)."""
    array = np.asarray(values, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    scaled: list[float] = (array / norm if norm > 0 else array).tolist()
    return scaled


def vector_schema(
    dense_size: int, *, dense: bool
) -> tuple[dict[str, models.VectorParams], dict[str, models.SparseVectorParams]]:
    """The dense (when wanted) and sparse vector parameters of a new collection."""
    vectors = {DENSE_VECTOR: models.VectorParams(size=dense_size, distance=DENSE_DISTANCE)} if dense else {}
    sparse = {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
    return vectors, sparse


def chunk_points(
    chunks: Sequence[Chunk],
    sparse: Sequence[models.SparseVector],
    dense: Sequence[Sequence[float]] | None,
    source_hashes: dict[str, str],
) -> list[models.PointStruct]:
    """One point per chunk; ``source_hashes`` gives each document's fingerprint (see ``fingerprint``)."""
    return [
        chunk_point(chunk, sparse[i], dense[i] if dense is not None else None, source_hashes.get(chunk.doc))
        for i, chunk in enumerate(chunks)
    ]


def chunk_point(
    chunk: Chunk, sparse: models.SparseVector, dense: Sequence[float] | None, source_hash: str | None = None
) -> models.PointStruct:
    vector: dict[str, models.Vector] = {}
    if sparse.indices:
        vector[SPARSE_VECTOR] = sparse
    if dense is not None:
        vector[DENSE_VECTOR] = unit_vector(dense)
    return models.PointStruct(
        id=point_id(chunk.doc, chunk.position),
        vector=vector,
        payload={
            "doc": chunk.doc,
            "title": chunk.title,
            "heading": chunk.heading,
            "url": chunk.url,
            "position": chunk.position,
            "text": chunk.text,
            "content_hash": chunk.content_hash,
            "source_hash": source_hash or "",
        },
    )


def passage_from_point(point: models.ScoredPoint) -> Passage:
    payload = point.payload or {}
    return Passage(
        id=str(point.id),
        doc=str(payload.get("doc", "")),
        title=str(payload.get("title", "")),
        heading=str(payload.get("heading", "")),
        url=str(payload.get("url", "")),
        text=str(payload.get("text", "")),
        score=float(point.score),
    )
