"""How the store reaches Qdrant: the few calls it makes, over qdrant-client's embedded mode or a server.

* Embedded (``QDRANT_URL`` unset), under ``DATA_DIR/qdrant``: that client is synchronous and keeps SQLite
  connections that belong to the thread that made them, so every call goes to one dedicated thread; the
  event loop never blocks and the calls are serialised.
* A server: ``AsyncQdrantClient`` on the URL exactly as written. qdrant-client puts port 6333 on a URL that
  has none, which is wrong behind a proxy or on Qdrant Cloud's 443, so the port is always passed: the URL's
  own, else the scheme's default.
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

from qdrant_client import AsyncQdrantClient, QdrantClient, models

from worker.knowledge import local_tuning

REMOTE_TIMEOUT_S = 10

P = ParamSpec("P")
T = TypeVar("T")


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


class QdrantBackend(Protocol):
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


class LocalBackend:
    def __init__(self, client: QdrantClient, executor: ThreadPoolExecutor) -> None:
        self._client = client
        self._executor = executor

    @classmethod
    async def open(cls, path: Path) -> LocalBackend:
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


class RemoteBackend:
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
