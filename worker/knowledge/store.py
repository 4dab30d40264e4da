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
import contextvars
import fcntl
import functools
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

import numpy as np
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from shared.settings import Settings
from worker.knowledge import local_tuning
from worker.knowledge.markdown_chunks import Chunk
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
    serving: str | None = None  # the versioned collection the alias points at (None: a plain collection)
    dense_distance: str | None = None


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


def unit_vector(values: Sequence[float]) -> list[float]:
    """``values`` scaled to length 1 (the zero vector stays zero)."""
    array = np.asarray(values, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    scaled: list[float] = (array / norm if norm > 0 else array).tolist()
    return scaled


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
    async def scroll(self, name: str, **kwargs: Any) -> tuple[list[models.Record], models.ExtendedPointId | None]: ...
    async def collection_names(self) -> list[str]: ...
    async def aliases(self) -> dict[str, str]: ...
    async def point_alias(self, alias: str, collection: str, *, replace_collection: bool) -> None: ...
    async def checkpoint(self, name: str) -> None: ...
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
        local_tuning.install_fast_sparse_scoring()
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
        await self._call(self._create, name, vectors, sparse)

    def _create(
        self, name: str, vectors: dict[str, models.VectorParams], sparse: dict[str, models.SparseVectorParams]
    ) -> None:
        self._client.create_collection(name, vectors_config=vectors, sparse_vectors_config=sparse)
        local_tuning.tune_connection(self._client, name)

    async def upsert(self, name: str, points: list[models.PointStruct]) -> None:
        await self._call(self._client.upsert, name, points=points)

    async def query(self, name: str, **kwargs: Any) -> list[models.ScoredPoint]:
        return (await self._call(self._client.query_points, name, **kwargs)).points

    async def scroll(self, name: str, **kwargs: Any) -> tuple[list[models.Record], models.ExtendedPointId | None]:
        return await self._call(self._client.scroll, name, **kwargs)

    async def collection_names(self) -> list[str]:
        response = await self._call(self._client.get_collections)
        return [c.name for c in response.collections]

    async def aliases(self) -> dict[str, str]:
        response = await self._call(self._client.get_aliases)
        return {a.alias_name: a.collection_name for a in response.aliases}

    async def point_alias(self, alias: str, collection: str, *, replace_collection: bool) -> None:
        await self._call(self._point_alias, alias, collection, replace_collection)

    def _point_alias(self, alias: str, collection: str, replace_collection: bool) -> None:
        # One call on the store's only thread: no query can run between the steps.
        if replace_collection:
            self._client.delete_collection(alias)
        self._client.update_collection_aliases(change_aliases_operations=_alias_operations(alias, collection))

    async def checkpoint(self, name: str) -> None:
        await self._call(local_tuning.checkpoint, self._client, name)

    async def close(self) -> None:
        try:
            await self._call(self._client.close)
        finally:
            self._executor.shutdown(wait=False)  # the thread is idle now: it ends by itself


def _open_local(path: Path) -> QdrantClient:
    path.mkdir(parents=True, exist_ok=True)
    _check_not_in_use(path)
    client = QdrantClient(path=str(path))
    local_tuning.tune_all(client)
    return client


def _check_not_in_use(path: Path) -> None:
    """Refuse a folder another process has open, before qdrant-client tries (it would leave its lock file
    open when it fails). The same exclusive, non-blocking ``flock`` qdrant-client takes."""
    lock = path / ".lock"
    if not lock.exists():
        return
    with lock.open("r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"Storage folder {path} is already accessed by another instance of Qdrant client"
            ) from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def _alias_operations(alias: str, collection: str) -> list[models.AliasOperations]:
    """Delete-then-create in one request: Qdrant applies the list atomically. Deleting an alias that does
    not exist is not an error in local mode; the remote caller only includes it when the alias exists."""
    return [
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)),
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)),
    ]


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

    async def scroll(self, name: str, **kwargs: Any) -> tuple[list[models.Record], models.ExtendedPointId | None]:
        return await self._client.scroll(name, **kwargs)

    async def collection_names(self) -> list[str]:
        return [c.name for c in (await self._client.get_collections()).collections]

    async def aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in (await self._client.get_aliases()).aliases}

    async def point_alias(self, alias: str, collection: str, *, replace_collection: bool) -> None:
        if replace_collection:
            # A server cannot swap a collection for an alias in one request: between these two calls
            # (milliseconds, once, when upgrading from an unversioned deployment) the name is missing.
            await self._client.delete_collection(alias)
            operations = _alias_operations(alias, collection)[1:]
        else:
            existing = await self.aliases()
            operations = _alias_operations(alias, collection)
            if alias not in existing:
                operations = operations[1:]
        await self._client.update_collection_aliases(change_aliases_operations=operations)

    async def checkpoint(self, name: str) -> None:
        return None  # the server persists by itself

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
