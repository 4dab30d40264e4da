"""The versions of the book behind the ``QDRANT_COLLECTION`` alias: name, create, list, drop, switch.

Each re-index fills a new collection ``{alias}__v{timestamp}{random}``, and ``switch_to`` points the alias at
it in one alias operation (delete + create in a single request), so every query is answered by one complete
version or the other. A deployment from before versioning has a real collection under the alias's name;
the first switch replaces it by the alias (in embedded mode in one call on the store's thread, so still
atomic for queries).
"""

from __future__ import annotations

import secrets
import time

from worker.knowledge.point_layout import vector_schema
from worker.knowledge.qdrant_backends import QdrantBackend
from worker.knowledge.qdrant_errors import KnowledgeStoreError, QdrantErrors

VERSION_MARK = "__v"


class CollectionVersions:
    """The versioned collections of one alias. ``serving_has_dense`` is what the store last learnt about
    the serving version's vectors (None: not known yet), for searches that bring a query vector."""

    def __init__(self, backend: QdrantBackend, errors: QdrantErrors, *, alias: str, dense_size: int) -> None:
        self._backend = backend
        self._errors = errors
        self.alias = alias
        self.dense_size = dense_size
        self.serving_has_dense: bool | None = None

    def new_name(self) -> str:
        """A collection name for the next version: sorts by creation time, never reused."""
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        return f"{self.alias}{VERSION_MARK}{stamp}{secrets.token_hex(3)}"

    def is_version(self, name: str) -> bool:
        return name.startswith(f"{self.alias}{VERSION_MARK}")

    async def serving(self) -> str | None:
        """The collection queries are answered from now: the alias's target, a plain collection under the
        alias's name (from before versioning), or None when there is none."""

        async def resolve() -> str | None:
            target = (await self._backend.aliases()).get(self.alias)
            if target is not None:
                return target
            names = await self._backend.collection_names()
            return self.alias if self.alias in names else None

        return await self._errors.guard("cannot look up the serving collection", resolve())

    async def names(self) -> list[str]:
        """Every versioned collection of this alias, oldest first."""
        names = await self._errors.guard("cannot list collections", self._backend.collection_names())
        return sorted(name for name in names if self.is_version(name))

    async def create(self, name: str, *, dense: bool) -> None:
        """Create an empty collection ``name`` with the sparse (and dense) schema."""
        self._check(name)
        vectors, sparse = vector_schema(self.dense_size, dense=dense)
        await self._errors.guard(
            f"cannot create collection {name!r}", self._backend.create_collection(name, vectors, sparse)
        )

    async def drop(self, name: str) -> None:
        """Delete a versioned collection (never the one the alias points at)."""
        self._check(name)
        if await self.serving() == name:
            raise KnowledgeStoreError(f"refusing to drop {name!r}: queries are answered from it")
        await self._errors.guard(f"cannot drop collection {name!r}", self._backend.delete_collection(name))

    async def switch_to(self, name: str, *, dense: bool) -> str | None:
        """Point the alias at ``name`` in one step; returns the collection it pointed at before."""
        self._check(name)
        previous = await self.serving()
        replace = previous == self.alias  # a plain collection from before versioning
        await self._backend.checkpoint(name)
        await self._errors.guard(
            f"cannot point alias {self.alias!r} at {name!r}",
            self._backend.point_alias(self.alias, name, replace_collection=replace),
        )
        self.serving_has_dense = dense
        return None if replace else previous

    def _check(self, name: str) -> None:
        if not self.is_version(name):
            raise ValueError(f"{name!r} is not a version of {self.alias!r}")
