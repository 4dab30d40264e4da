"""The book's passages in Qdrant: keyword (BM25) retrieval always, hybrid with dense vectors when available.

Two ways to reach Qdrant, chosen by ``QDRANT_URL``:

* unset: qdrant-client's embedded local mode, persisted under ``DATA_DIR/qdrant``. That client is
  synchronous and keeps SQLite connections that belong to the thread that made them, so every call goes
  to one dedicated thread: the event loop never blocks and the calls are serialised.
* set: ``AsyncQdrantClient`` on that URL exactly as written. qdrant-client puts port 6333 on a URL that
  has none (its ``port`` argument defaults to 6333 and is used whenever the URL carries no port), which is
  wrong behind a proxy or on Qdrant Cloud's 443, so the port is always passed: the URL's own, else the
  scheme's default.

The collection holds a sparse vector ``bm25`` (IDF applied by Qdrant) and, when the book was embedded, a
dense vector ``dense`` (cosine). Point ids are derived from the document and chunk position, so re-indexing
the same book overwrites rather than duplicates.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from shared.settings import Settings
from worker.knowledge.markdown_chunks import Chunk
from worker.knowledge.sparse import SparseEncoder

log = logging.getLogger(__name__)

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"
UPSERT_BATCH = 64
REMOTE_TIMEOUT_S = 10
_POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "physical-ai-tutor/book-chunk")

P = ParamSpec("P")
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


@dataclass(frozen=True, slots=True)
class RemoteEndpoint:
    """Where a Qdrant URL points, with the port made explicit."""

    host: str
    port: int
    https: bool
    prefix: str  # path under which Qdrant's API is served, "" for the root

    @property
    def location(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def remote_endpoint(url: str) -> RemoteEndpoint:
    """Host, port and scheme of a Qdrant URL; without a port, 443 for https and 80 for http (never 6333)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise ValueError("a Qdrant URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("a Qdrant URL needs a host name")
    try:
        explicit = parts.port
    except ValueError:
        raise ValueError("a Qdrant URL's port must be a number from 1 to 65535") from None
    https = scheme == "https"
    port = explicit if explicit else (443 if https else 80)
    return RemoteEndpoint(host=parts.hostname, port=port, https=https, prefix=parts.path.rstrip("/"))


def remote_client(url: str, api_key: str | None) -> AsyncQdrantClient:
    """An async client for ``url`` as written: the port is passed so qdrant-client does not add 6333."""
    endpoint = remote_endpoint(url)
    return AsyncQdrantClient(
        url=url.strip(),
        port=endpoint.port,
        api_key=api_key,
        timeout=REMOTE_TIMEOUT_S,
        # The version check runs in a thread at construction and only warns; status() reports reachability.
        check_compatibility=False,
    )


def point_id(doc: str, position: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc}#{position}"))


# --------------------------------------------------------------------------------------------------
# Backends: the few Qdrant calls the store makes, over the local (threaded) or the remote (async) client


class _Backend(Protocol):
    async def collection_exists(self, name: str) -> bool: ...
    async def get_collection(self, name: str) -> models.CollectionInfo: ...
    async def count(self, name: str) -> int: ...
    async def delete_collection(self, name: str) -> None: ...
    async def create_collection(
        self,
        name: str,
        vectors: dict[str, models.VectorParams],
        sparse: dict[str, models.SparseVectorParams],
    ) -> None: ...
    async def upsert(self, name: str, points: list[models.PointStruct]) -> None: ...
    async def query(self, name: str, **kwargs: Any) -> list[models.ScoredPoint]: ...
    async def close(self) -> None: ...


class _LocalBackend:
    def __init__(self, client: QdrantClient, executor: ThreadPoolExecutor) -> None:
        self._client = client
        self._executor = executor

    @classmethod
    async def open(cls, path: Path) -> _LocalBackend:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-local")
        try:
            client = await _in_thread(executor, _open_local, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(client, executor)

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await _in_thread(self._executor, fn, *args, **kwargs)

    async def collection_exists(self, name: str) -> bool:
        return await self._call(self._client.collection_exists, name)

    async def get_collection(self, name: str) -> models.CollectionInfo:
        return await self._call(self._client.get_collection, name)

    async def count(self, name: str) -> int:
        return (await self._call(self._client.count, name, exact=True)).count

    async def delete_collection(self, name: str) -> None:
        await self._call(self._client.delete_collection, name)

    async def create_collection(
        self,
        name: str,
        vectors: dict[str, models.VectorParams],
        sparse: dict[str, models.SparseVectorParams],
    ) -> None:
        await self._call(self._client.create_collection, name, vectors_config=vectors, sparse_vectors_config=sparse)

    async def upsert(self, name: str, points: list[models.PointStruct]) -> None:
        await self._call(self._client.upsert, name, points=points)

    async def query(self, name: str, **kwargs: Any) -> list[models.ScoredPoint]:
        return (await self._call(self._client.query_points, name, **kwargs)).points

    async def close(self) -> None:
        try:
            await self._call(self._client.close)
        finally:
            self._executor.shutdown(wait=False)  # the thread is idle now: it ends by itself


def _open_local(path: Path) -> QdrantClient:
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


async def _in_thread(executor: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``asyncio.to_thread`` on a chosen executor (context variables travel along, as with to_thread)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await loop.run_in_executor(executor, call)


class _RemoteBackend:
    def __init__(self, client: AsyncQdrantClient) -> None:
        self._client = client

    async def collection_exists(self, name: str) -> bool:
        return await self._client.collection_exists(name)

    async def get_collection(self, name: str) -> models.CollectionInfo:
        return await self._client.get_collection(name)

    async def count(self, name: str) -> int:
        return (await self._client.count(name, exact=True)).count

    async def delete_collection(self, name: str) -> None:
        await self._client.delete_collection(name)

    async def create_collection(
        self,
        name: str,
        vectors: dict[str, models.VectorParams],
        sparse: dict[str, models.SparseVectorParams],
    ) -> None:
        await self._client.create_collection(name, vectors_config=vectors, sparse_vectors_config=sparse)

    async def upsert(self, name: str, points: list[models.PointStruct]) -> None:
        await self._client.upsert(name, points=points, wait=True)

    async def query(self, name: str, **kwargs: Any) -> list[models.ScoredPoint]:
        return (await self._client.query_points(name, **kwargs)).points

    async def close(self) -> None:
        await self._client.close()


# --------------------------------------------------------------------------------------------------
# The store


class KnowledgeStore:
    """The worker's view of the indexed book. Create with ``await KnowledgeStore.open(settings)``."""

    def __init__(
        self,
        backend: _Backend,
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
        self._remote = isinstance(backend, _RemoteBackend)
        self._has_dense: bool | None = None  # learnt from status() / recreate()
        self._warned_no_dense = False
        self._closed = False

    @classmethod
    async def open(cls, settings: Settings) -> KnowledgeStore:
        """Local mode opens (and locks) its folder now; a remote client connects on first use."""
        if settings.qdrant_url is None:
            path = settings.qdrant_path
            try:
                local = await _LocalBackend.open(path)
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
            _RemoteBackend(remote_client(url, api_key)),
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

    async def status(self) -> CollectionStatus:
        """What the collection looks like; never raises for an unreachable Qdrant, it says so in ``error``."""
        name = self.collection
        try:
            if not await self._backend.collection_exists(name):
                return CollectionStatus(exists=False, points=0, has_dense=False, location=self.location)
            info = await self._backend.get_collection(name)
            points = await self._backend.count(name)
        except Exception as exc:
            return CollectionStatus(
                exists=False, points=0, has_dense=False, location=self.location, error=self._describe(exc)
            )
        vectors = info.config.params.vectors
        dense = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
        sparse = info.config.params.sparse_vectors or {}
        self._has_dense = dense is not None
        return CollectionStatus(
            exists=True,
            points=points,
            has_dense=dense is not None,
            location=self.location,
            has_sparse=SPARSE_VECTOR in sparse,
            dense_size=dense.size if dense is not None else None,
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

    # --- writing --------------------------------------------------------------------------------

    async def recreate(self, dense: bool) -> None:
        """Drop the collection if it exists and create it empty with the sparse (and dense) schema."""
        name = self.collection
        vectors = (
            {DENSE_VECTOR: models.VectorParams(size=self.dense_size, distance=models.Distance.COSINE)} if dense else {}
        )
        sparse = {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
        try:
            if await self._backend.collection_exists(name):
                await self._backend.delete_collection(name)
            await self._backend.create_collection(name, vectors, sparse)
        except Exception as exc:
            raise KnowledgeStoreError(f"cannot create collection {name!r}: {self._describe(exc)}") from exc
        self._has_dense = dense

    async def upsert(
        self,
        chunks: Sequence[Chunk],
        dense_vectors: Sequence[Sequence[float]] | None,
        *,
        sparse_vectors: Sequence[models.SparseVector] | None = None,
        batch_size: int = UPSERT_BATCH,
    ) -> None:
        """Write chunks (with their dense vectors when the collection has them) in batches."""
        if dense_vectors is not None and len(dense_vectors) != len(chunks):
            raise ValueError(f"{len(dense_vectors)} dense vectors for {len(chunks)} chunks")
        if sparse_vectors is not None and len(sparse_vectors) != len(chunks):
            raise ValueError(f"{len(sparse_vectors)} sparse vectors for {len(chunks)} chunks")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        for start in range(0, len(chunks), batch_size):
            batch = chunks[start : start + batch_size]
            if sparse_vectors is not None:
                sparse = list(sparse_vectors[start : start + batch_size])
            else:
                sparse = await asyncio.to_thread(self.encode_documents, batch)
            dense = dense_vectors[start : start + batch_size] if dense_vectors is not None else None
            points = [
                _point(chunk, sparse[i], dense[i] if dense is not None else None) for i, chunk in enumerate(batch)
            ]
            try:
                await self._backend.upsert(self.collection, points)
            except Exception as exc:
                raise KnowledgeStoreError(f"cannot write passages: {self._describe(exc)}") from exc

    def encode_documents(self, chunks: Sequence[Chunk]) -> list[models.SparseVector]:
        """Sparse vectors of chunks (CPU work: call it from a thread for a whole book)."""
        return [self.encoder.encode_document(chunk.search_text) for chunk in chunks]

    # --- reading --------------------------------------------------------------------------------

    async def search(self, question: str, query_vector: Sequence[float] | None, limit: int) -> list[Passage]:
        """Best passages for ``question``: BM25 alone, or BM25 and dense fused by reciprocal rank."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        sparse = self.encoder.encode_query(question)
        if query_vector is not None and self._has_dense is False:
            if not self._warned_no_dense:
                self._warned_no_dense = True
                log.warning("collection %s has no dense vectors: searching by keywords only", self.collection)
            query_vector = None
        try:
            if query_vector is None:
                if not sparse.indices:
                    return []  # nothing but stop words and punctuation: no keyword can match
                points = await self._backend.query(
                    self.collection, query=sparse, using=SPARSE_VECTOR, limit=limit, with_payload=True
                )
            else:
                depth = max(limit * 4, 20)
                prefetch = [models.Prefetch(query=[float(x) for x in query_vector], using=DENSE_VECTOR, limit=depth)]
                if sparse.indices:
                    prefetch.append(models.Prefetch(query=sparse, using=SPARSE_VECTOR, limit=depth))
                points = await self._backend.query(
                    self.collection,
                    prefetch=prefetch,
                    query=models.FusionQuery(fusion=models.Fusion.RRF),
                    limit=limit,
                    with_payload=True,
                )
        except Exception as exc:
            raise KnowledgeStoreError(f"search failed: {self._describe(exc)}") from exc
        return [_passage(point) for point in points]


def _point(chunk: Chunk, sparse: models.SparseVector, dense: Sequence[float] | None) -> models.PointStruct:
    vector: dict[str, models.Vector] = {}
    if sparse.indices:
        vector[SPARSE_VECTOR] = sparse
    if dense is not None:
        vector[DENSE_VECTOR] = [float(x) for x in dense]
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
