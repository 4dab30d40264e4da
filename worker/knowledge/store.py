"""The book's passages in Qdrant: keyword (BM25) retrieval always, hybrid with dense vectors when available.

Qdrant is reached through ``worker/knowledge/qdrant_backends.py`` (embedded, or a server at ``QDRANT_URL``).

The collection holds a sparse vector ``bm25`` (IDF applied by Qdrant) and, when the book was embedded, a
dense vector ``dense`` (unit length, compared by dot product: the cosine similarity). Point ids are derived
from the document and chunk position, so re-indexing the same book overwrites rather than duplicates.

Versions: ``QDRANT_COLLECTION`` is an *alias*. Each re-index fills a new collection named
``{alias}__v{timestamp}{random}``, and ``switch_alias`` points the alias at it in one alias operation
(delete + create in a single request), so every query is answered by one complete version or the other.
A deployment from before versioning has a real collection under the alias's name; the first switch
replaces it by the alias (in embedded mode in one call on the store's thread, so still atomic for queries).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from qdrant_client import models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from shared.settings import Settings
from worker.knowledge.documents import Chunk
from worker.knowledge.qdrant_backends import LocalBackend, QdrantBackend, RemoteBackend, remote_client, remote_endpoint
from worker.knowledge.sparse import SparseEncoder

log = logging.getLogger(__name__)

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"
UPSERT_BATCH = 64
SCROLL_BATCH = 256
# Dense vectors are stored at unit length, so the dot product is the cosine similarity. Qdrant's COSINE
# would give the same ranking, but embedded mode re-normalises the whole matrix on every query (~10 ms at
# 2,000 x 1,024); DOT is one matrix-vector product.
DENSE_DISTANCE = models.Distance.DOT
VERSION_MARK = "__v"
_POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "physical-ai-tutor/book-chunk")

T = TypeVar("T")


class KnowledgeStoreError(RuntimeError):
    """Qdrant could not do what was asked; the message says where and why (never with a key)."""


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    doc: str
    title: str
    heading: str
    url: str
    text: str
    score: float


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


def unit_vector(values: Sequence[float]) -> list[float]:
    """``values`` scaled to length 1 (the zero vector stays zero)."""
    array = np.asarray(values, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    scaled: list[float] = (array / norm if norm > 0 else array).tolist()
    return scaled


def point_id(doc: str, position: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc}#{position}"))


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
        self._secrets = [s for s in secrets if s]
        self._remote = isinstance(backend, RemoteBackend)
        self._has_dense: bool | None = None  # learnt from status() / recreate()
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

    # --- inspection -----------------------------------------------------------------------------

    async def status(self, name: str | None = None) -> CollectionStatus:
        """What the collection (the alias, or ``name``) looks like; never raises for an unreachable Qdrant,
        it says so in ``error``."""
        name = name or self.collection
        serving: str | None = None
        try:
            if not await self._backend.collection_exists(name):
                return CollectionStatus(exists=False, points=0, has_dense=False, location=self.location)
            info = await self._backend.get_collection(name)
            points = await self._backend.count(name)
            if name == self.collection:
                serving = (await self._backend.aliases()).get(name)
        except Exception as exc:
            return CollectionStatus(
                exists=False, points=0, has_dense=False, location=self.location, error=self._describe(exc)
            )
        vectors = info.config.params.vectors
        dense = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
        sparse = info.config.params.sparse_vectors or {}
        if name == self.collection:
            self._has_dense = dense is not None
        return CollectionStatus(
            exists=True,
            points=points,
            has_dense=dense is not None,
            location=self.location,
            has_sparse=SPARSE_VECTOR in sparse,
            dense_size=dense.size if dense is not None else None,
            serving=serving,
            dense_distance=str(dense.distance.value) if dense is not None else None,
        )

    def _describe(self, exc: BaseException) -> str:
        """One line saying which Qdrant failed and why, with any secret masked."""
        where = f"Qdrant at {self.location}"
        if isinstance(exc, UnexpectedResponse):
            code = exc.status_code
            if code in {401, 403}:
                message = f"{where} refused the request (HTTP {code}): check QDRANT_API_KEY"
            else:
                message = f"{where} answered HTTP {code} {exc.reason_phrase}".rstrip()
        else:
            cause = exc.source if isinstance(exc, ResponseHandlingException) else exc
            lines = str(cause).strip().splitlines()
            reason = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
            failed = f"cannot reach {where}" if self._remote else f"{where} failed"
            message = f"{failed}: {reason}"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    async def _guard(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except Exception as exc:
            raise KnowledgeStoreError(f"{what}: {self._describe(exc)}") from exc

    # --- versions -------------------------------------------------------------------------------

    def new_version_name(self) -> str:
        """A collection name for the next version: sorts by creation time, never reused."""
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        return f"{self.collection}{VERSION_MARK}{stamp}{secrets.token_hex(3)}"

    def is_version(self, name: str) -> bool:
        return name.startswith(f"{self.collection}{VERSION_MARK}")

    async def serving_collection(self) -> str | None:
        """The collection queries are answered from now: the alias's target, a plain collection under the
        alias's name (from before versioning), or None when there is none."""

        async def resolve() -> str | None:
            target = (await self._backend.aliases()).get(self.collection)
            if target is not None:
                return target
            names = await self._backend.collection_names()
            return self.collection if self.collection in names else None

        return await self._guard("cannot look up the serving collection", resolve())

    async def versions(self) -> list[str]:
        """Every versioned collection of this alias, oldest first."""
        names = await self._guard("cannot list collections", self._backend.collection_names())
        return sorted(name for name in names if self.is_version(name))

    async def create_version(self, name: str, *, dense: bool) -> None:
        """Create an empty collection ``name`` with the sparse (and dense) schema."""
        if not self.is_version(name):
            raise ValueError(f"{name!r} is not a version of {self.collection!r}")
        vectors = {DENSE_VECTOR: models.VectorParams(size=self.dense_size, distance=DENSE_DISTANCE)} if dense else {}
        sparse = {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
        await self._guard(f"cannot create collection {name!r}", self._backend.create_collection(name, vectors, sparse))

    async def drop_version(self, name: str) -> None:
        """Delete a versioned collection (never the one the alias points at)."""
        if not self.is_version(name):
            raise ValueError(f"{name!r} is not a version of {self.collection!r}")
        if await self.serving_collection() == name:
            raise KnowledgeStoreError(f"refusing to drop {name!r}: queries are answered from it")
        await self._guard(f"cannot drop collection {name!r}", self._backend.delete_collection(name))

    async def switch_alias(self, name: str, *, dense: bool) -> str | None:
        """Point the alias at ``name`` in one step; returns the collection it pointed at before."""
        if not self.is_version(name):
            raise ValueError(f"{name!r} is not a version of {self.collection!r}")
        previous = await self.serving_collection()
        replace = previous == self.collection  # a plain collection from before versioning
        await self._backend.checkpoint(name)
        await self._guard(
            f"cannot point alias {self.collection!r} at {name!r}",
            self._backend.point_alias(self.collection, name, replace_collection=replace),
        )
        self._has_dense = dense
        return None if replace else previous

    async def count(self, name: str | None = None) -> int:
        target = name or self.collection
        return await self._guard(f"cannot count {target!r}", self._backend.count(target))

    async def documents(self, name: str) -> dict[str, str]:
        """Each document in collection ``name`` with the ``source_hash`` its points were built from."""
        found: dict[str, str] = {}
        async for records in self._scroll(name, payload=["doc", "source_hash"], vectors=False):
            for record in records:
                payload = record.payload or {}
                doc = payload.get("doc")
                if isinstance(doc, str):
                    found.setdefault(doc, str(payload.get("source_hash", "")))
        return found

    async def section_texts(self, name: str) -> AsyncIterator[list[tuple[str, str, str]]]:
        """Every passage of collection ``name`` as (title, heading path, text), a batch at a time."""
        async for records in self._scroll(name, payload=["title", "heading", "text"], vectors=False):
            yield [
                (str(p.get("title", "")), str(p.get("heading", "")), str(p.get("text", "")))
                for p in (r.payload or {} for r in records)
            ]

    async def outline(self, doc: str) -> list[tuple[str, str]]:
        """The sections of one document in reading order, as (heading path, url), each heading once."""
        where = models.Filter(must=[models.FieldCondition(key="doc", match=models.MatchValue(value=doc))])
        chunks: list[tuple[int, str, str]] = []
        async for records in self._scroll(
            self.collection, payload=["position", "heading", "url"], vectors=False, where=where
        ):
            for record in records:
                payload = record.payload or {}
                chunks.append(
                    (int(payload.get("position", 0)), str(payload.get("heading", "")), str(payload.get("url", "")))
                )
        sections: dict[str, str] = {}
        for _, heading, url in sorted(chunks):
            sections.setdefault(heading, url)
        return list(sections.items())

    async def copy_documents(self, source: str, target: str, docs: set[str]) -> int:
        """Copy the points of ``docs`` (vectors and payload as they are) from ``source`` to ``target``."""
        copied = 0
        if not docs:
            return 0
        doc_filter = models.Filter(must=[models.FieldCondition(key="doc", match=models.MatchAny(any=sorted(docs)))])
        async for records in self._scroll(source, payload=True, vectors=True, where=doc_filter):
            points = [
                models.PointStruct(id=r.id, vector=r.vector if isinstance(r.vector, dict) else {}, payload=r.payload)
                for r in records
            ]
            await self._guard(f"cannot write to {target!r}", self._backend.upsert(target, points))
            copied += len(points)
        return copied

    async def _scroll(
        self, name: str, *, payload: bool | list[str], vectors: bool, where: models.Filter | None = None
    ) -> AsyncIterator[list[models.Record]]:
        offset: models.ExtendedPointId | None = None
        while True:
            records, offset = await self._guard(
                f"cannot read {name!r}",
                self._backend.scroll(
                    name,
                    scroll_filter=where,
                    limit=SCROLL_BATCH,
                    offset=offset,
                    with_payload=payload,
                    with_vectors=vectors,
                ),
            )
            if records:
                yield records
            if offset is None:
                return

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
            points = await asyncio.to_thread(_points, batch, sparse, dense, hashes)
            try:
                await self._backend.upsert(target, points)
            except Exception as exc:
                raise KnowledgeStoreError(f"cannot write passages: {self._describe(exc)}") from exc

    def encode_documents(self, chunks: Sequence[Chunk]) -> list[models.SparseVector]:
        """Sparse vectors of chunks (CPU work: call it from a thread for a whole book)."""
        return [self.encoder.encode_document(chunk.search_text) for chunk in chunks]

    # --- reading --------------------------------------------------------------------------------

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
        if query_vector is not None and collection is None and self._has_dense is False:
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
            raise KnowledgeStoreError(f"search failed: {self._describe(exc)}") from exc
        return [_passage(point) for point in points]


def _points(
    chunks: Sequence[Chunk],
    sparse: Sequence[models.SparseVector],
    dense: Sequence[Sequence[float]] | None,
    source_hashes: dict[str, str],
) -> list[models.PointStruct]:
    return [
        _point(chunk, sparse[i], dense[i] if dense is not None else None, source_hashes.get(chunk.doc))
        for i, chunk in enumerate(chunks)
    ]


def _point(
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


def _passage(point: models.ScoredPoint) -> Passage:
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
