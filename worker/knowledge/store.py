"""The worker's handle on the book in Qdrant: opened from settings, it writes passages and searches them.

Keyword (BM25) retrieval always, hybrid with dense vectors when the book was embedded. Qdrant is reached
through ``qdrant_backends`` (embedded, or a server at ``QDRANT_URL``); ``QDRANT_COLLECTION`` is an alias
whose versions ``versions`` manages, and ``contents`` reads collections whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from qdrant_client import models

from shared.settings import Settings
from worker.knowledge.collection_contents import CollectionContents
from worker.knowledge.collection_status import CollectionStatus, read_status
from worker.knowledge.collection_versions import CollectionVersions
from worker.knowledge.documents import Chunk, Passage
from worker.knowledge.point_layout import DENSE_VECTOR, SPARSE_VECTOR, chunk_points, passage_from_point, unit_vector
from worker.knowledge.qdrant_backends import LocalBackend, QdrantBackend, RemoteBackend, remote_client, remote_endpoint
from worker.knowledge.qdrant_errors import KnowledgeStoreError, QdrantErrors
from worker.knowledge.sparse import SparseEncoder

log = logging.getLogger(__name__)

UPSERT_BATCH = 64


class KnowledgeStore:
    """The worker's view of the indexed book. Create with ``await KnowledgeStore.open(settings)``."""

    def __init__(
        self,
        backend: QdrantBackend,
        *,
        collection: str,
        location: str,
        dense_size: int,
        secrets: Sequence[str] = (),
        encoder: SparseEncoder | None = None,
    ) -> None:
        self._backend = backend
        self.collection = collection
        self.location = location
        self.dense_size = dense_size
        self.encoder = encoder or SparseEncoder()
        self.errors = QdrantErrors(location, remote=isinstance(backend, RemoteBackend), secrets=secrets)
        self.versions = CollectionVersions(backend, self.errors, alias=collection, dense_size=dense_size)
        self.contents = CollectionContents(backend, self.errors, alias=collection)
        self._warned_no_dense = False
        self._closed = False

    @classmethod
    async def open(cls, settings: Settings) -> KnowledgeStore:
        """Local mode opens (and locks) its folder now; a remote client connects on first use."""
        if settings.qdrant_url is None:
            path = settings.qdrant_path
            try:
                local = await LocalBackend.open(path)
            except Exception as exc:
                raise KnowledgeStoreError(f"cannot open local Qdrant at {path}: {exc}") from exc
            return cls(
                local,
                collection=settings.qdrant_collection,
                location=f"local:{path}",
                dense_size=settings.cohere_embed_dimension,
            )
        url = str(settings.qdrant_url)
        endpoint = remote_endpoint(url)
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return cls(
            RemoteBackend(remote_client(url, api_key)),
            collection=settings.qdrant_collection,
            location=endpoint.location,
            dense_size=settings.cohere_embed_dimension,
            secrets=[api_key] if api_key else [],
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._backend.close()

    async def __aenter__(self) -> KnowledgeStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def status(self, name: str | None = None) -> CollectionStatus:
        """What the collection (the alias, or ``name``) looks like; never raises for an unreachable Qdrant,
        it says so in ``error``."""
        name = name or self.collection
        status = await read_status(self._backend, self.errors, name, alias=self.collection)
        if name == self.collection and status.exists:
            self.versions.serving_has_dense = status.has_dense
        return status

    async def count(self, name: str | None = None) -> int:
        target = name or self.collection
        return await self.errors.guard(f"cannot count {target!r}", self._backend.count(target))

    # --- writing --------------------------------------------------------------------------------

    async def upsert(
        self,
        chunks: Sequence[Chunk],
        dense_vectors: Sequence[Sequence[float]] | None,
        *,
        sparse_vectors: Sequence[models.SparseVector] | None = None,
        batch_size: int = UPSERT_BATCH,
        collection: str | None = None,
        source_hashes: dict[str, str] | None = None,
    ) -> None:
        """Write chunks (with their dense vectors when the collection has them) in batches."""
        if dense_vectors is not None and len(dense_vectors) != len(chunks):
            raise ValueError(f"{len(dense_vectors)} dense vectors for {len(chunks)} chunks")
        if sparse_vectors is not None and len(sparse_vectors) != len(chunks):
            raise ValueError(f"{len(sparse_vectors)} sparse vectors for {len(chunks)} chunks")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        target = collection or self.collection
        hashes = source_hashes or {}
        for start in range(0, len(chunks), batch_size):
            batch = chunks[start : start + batch_size]
            if sparse_vectors is not None:
                sparse = list(sparse_vectors[start : start + batch_size])
            else:
                sparse = await asyncio.to_thread(self.encode_documents, batch)
            dense = dense_vectors[start : start + batch_size] if dense_vectors is not None else None
            points = await asyncio.to_thread(chunk_points, batch, sparse, dense, hashes)
            await self.errors.guard("cannot write passages", self._backend.upsert(target, points))

    def encode_documents(self, chunks: Sequence[Chunk]) -> list[models.SparseVector]:
        """Sparse vectors of chunks (CPU work: call it from a thread for a whole book)."""
        return [self.encoder.encode_document(chunk.search_text) for chunk in chunks]

    # --- searching ------------------------------------------------------------------------------

    async def search(
        self,
        question: str,
        query_vector: Sequence[float] | None,
        limit: int,
        *,
        collection: str | None = None,
    ) -> list[Passage]:
        """Best passages for ``question``: BM25 alone, or BM25 and dense fused by reciprocal rank.

        ``collection`` searches one version directly (the re-index's probe); by default the alias."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        sparse = self.encoder.encode_query(question)
        if query_vector is not None and collection is None and self.versions.serving_has_dense is False:
            if not self._warned_no_dense:
                self._warned_no_dense = True
                log.warning("collection %s has no dense vectors: searching by keywords only", self.collection)
            query_vector = None
        target = collection or self.collection
        try:
            if query_vector is None:
                if not sparse.indices:
                    return []  # nothing but stop words and punctuation: no keyword can match
                points = await self._backend.query(
                    target, query=sparse, using=SPARSE_VECTOR, limit=limit, with_payload=True
                )
            else:
                depth = max(limit * 2, 20)
                prefetch = [models.Prefetch(query=unit_vector(query_vector), using=DENSE_VECTOR, limit=depth)]
                if sparse.indices:
                    prefetch.append(models.Prefetch(query=sparse, using=SPARSE_VECTOR, limit=depth))
                points = await self._backend.query(
                    target,
                    prefetch=prefetch,
                    query=models.FusionQuery(fusion=models.Fusion.RRF),
                    limit=limit,
                    with_payload=True,
                )
        except Exception as exc:
            raise KnowledgeStoreError(f"search failed: {self.errors.describe(exc)}") from exc
        return [passage_from_point(point) for point in points]
