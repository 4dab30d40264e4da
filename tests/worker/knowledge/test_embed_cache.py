"""The embedding cache: keyed by model, dimension, input type and exact text; survives reopening."""

from __future__ import annotations

from pathlib import Path

from worker.knowledge.embed_cache import EmbeddingCache, cache_key


async def test_vectors_come_back_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    key = cache_key("embed-v4.0", 4, "search_document", "Legs and feet")
    cache = await EmbeddingCache.open(path)
    try:
        assert await cache.get_many([key], 4) == {}
        assert await cache.put_many([(key, [0.5, -0.25, 0.125, 1.0])]) == 1
        assert await cache.put_many([("nan", [float("nan")] * 4), ("empty", [])]) == 0  # never cache garbage
    finally:
        await cache.close()
    reopened = await EmbeddingCache.open(path)
    try:
        assert await reopened.get_many([key, "other"], 4) == {key: [0.5, -0.25, 0.125, 1.0]}
        assert await reopened.get_many([key], 8) == {}  # another dimension is another vector
        assert await reopened.count() == 1
    finally:
        await reopened.close()


def test_keys_differ_by_every_part() -> None:
    base = cache_key("m", 4, "search_document", "text")
    assert base == cache_key("m", 4, "search_document", "text")
    others = {
        cache_key("m2", 4, "search_document", "text"),
        cache_key("m", 8, "search_document", "text"),
        cache_key("m", 4, "search_query", "text"),
        cache_key("m", 4, "search_document", "text "),
    }
    assert base not in others and len(others) == 4


async def test_a_corrupt_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    cache = await EmbeddingCache.open(path)
    try:
        assert await cache.count() == 0
        await cache.put_many([("k", [1.0, 2.0])])
        assert await cache.get_many(["k"], 2) == {"k": [1.0, 2.0]}
    finally:
        await cache.close()
