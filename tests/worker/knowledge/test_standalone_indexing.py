"""Indexing without Redis: ``ensure_indexed`` builds only when the serving collection cannot be used, and
``index_book`` builds from a folder now. Real embedded Qdrant under a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.factories import DIM, SAMPLE_BOOK, HashEmbedder, knowledge_settings
from worker.knowledge.index_report import IndexingError
from worker.knowledge.standalone_indexing import ensure_indexed, index_book
from worker.knowledge.store import KnowledgeStore


async def test_ensure_indexed_indexes_once(store: KnowledgeStore, settings: Settings) -> None:
    before = await store.status()
    assert (before.exists, before.points, before.error) == (False, 0, None)
    assert before.location == f"local:{settings.qdrant_path}"

    report = await ensure_indexed(store, settings, None)
    assert report is not None
    assert report.documents == 6
    assert report.chunks > 20
    assert report.skipped == []
    assert report.seconds > 0

    after = await store.status()
    assert after.exists and after.has_sparse and not after.has_dense
    assert after.points == report.chunks

    assert await ensure_indexed(store, settings, None) is None
    assert (await store.status()).points == report.chunks


async def test_ensure_indexed_builds_a_version_from_book_source(store: KnowledgeStore, settings: Settings) -> None:
    report = await ensure_indexed(store, settings, HashEmbedder(DIM))
    assert report is not None and report.dense and report.collection == await store.versions.serving()
    assert (settings.data_dir / "embed-cache.sqlite3").exists()
    assert await ensure_indexed(store, settings, HashEmbedder(DIM)) is None


async def test_dense_size_change_triggers_reindex(tmp_path: Path) -> None:
    first = knowledge_settings(tmp_path, cohere_embed_dimension=DIM)
    store = await KnowledgeStore.open(first)
    await ensure_indexed(store, first, HashEmbedder(DIM))
    await store.close()

    resized = knowledge_settings(tmp_path, cohere_embed_dimension=32)
    store = await KnowledgeStore.open(resized)
    try:
        assert (await store.status()).dense_size == DIM
        report = await ensure_indexed(store, resized, HashEmbedder(32))
        assert report is not None
        assert (await store.status()).dense_size == 32
    finally:
        await store.close()


async def test_missing_or_empty_book_leaves_the_index_alone(store: KnowledgeStore, tmp_path: Path) -> None:
    report = await index_book(store, SAMPLE_BOOK, "/docs", None)
    empty = tmp_path / "empty-book"
    empty.mkdir()
    with pytest.raises(IndexingError, match="the folder holds no Markdown"):
        await index_book(store, empty, "/docs", None)
    with pytest.raises(IndexingError, match="not a folder"):
        await index_book(store, tmp_path / "absent", "/docs", None)
    assert (await store.status()).points == report.chunks


async def test_index_book_accepts_a_folder_copy(store: KnowledgeStore, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(SAMPLE_BOOK, copy)
    report = await index_book(store, copy, "/docs", None)
    assert report.documents == 6 and report.skipped == []
