"""The versions behind the alias: named to sort by time, switched in one step, never dropped while serving."""

from __future__ import annotations

import pytest
from qdrant_client import models

from worker.knowledge.qdrant_errors import KnowledgeStoreError
from worker.knowledge.store import KnowledgeStore


async def test_versions_are_created_listed_switched_and_dropped(store: KnowledgeStore) -> None:
    versions = store.versions
    first, second = versions.new_name(), versions.new_name()
    assert first != second and versions.is_version(first) and not versions.is_version(store.collection)
    assert await versions.serving() is None
    await versions.create(second, dense=False)
    await versions.create(first, dense=True)
    assert await versions.names() == sorted([first, second])

    assert await versions.switch_to(first, dense=True) is None
    assert await versions.serving() == first and versions.serving_has_dense is True
    assert await versions.switch_to(second, dense=False) == first
    assert await versions.serving() == second and versions.serving_has_dense is False

    with pytest.raises(KnowledgeStoreError, match="queries are answered from it"):
        await versions.drop(second)
    await versions.drop(first)
    assert await versions.names() == [second]


async def test_names_that_are_not_versions_are_refused(store: KnowledgeStore) -> None:
    for call in (store.versions.create("other", dense=False), store.versions.drop("other")):
        with pytest.raises(ValueError, match="is not a version of"):
            await call


async def test_a_plain_collection_under_the_alias_name_is_replaced_by_the_alias(store: KnowledgeStore) -> None:
    plain = {"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)}
    await store._backend.create_collection(store.collection, {}, plain)
    assert await store.versions.serving() == store.collection
    name = store.versions.new_name()
    await store.versions.create(name, dense=False)
    assert await store.versions.switch_to(name, dense=False) is None  # the plain collection is gone, not kept
    assert await store.versions.serving() == name
    assert store.collection not in await store._backend.collection_names()
