"""Document embeddings already paid for, so that an unchanged chunk is never embedded twice.

Keyed by a hash of (model, dimension, input type, the exact text embedded): a chunk whose text, heading
path and model are unchanged hits the cache; change any of them and it is embedded again. Vectors are
stored as float32 (what the Embed API's ``float`` type carries in practice) in one SQLite file under
``DATA_DIR``, next to the embedded Qdrant.

Why a file and not Redis: this Redis is an in-memory queue with persistence off, restarted with the
container; a cache that vanishes exactly when the index has to be rebuilt (first start after a restart)
saves nothing. A 1,024-dimension vector is 4 KB, several MB per book, which would also crowd the memory
Redis needs for turn streams. SQLite gives atomic batches (a cancelled re-index keeps what it embedded so
far, and never a half-written vector) and needs no server. Only the worker's one re-index at a time writes
it; every call runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import sqlite3
import threading
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY,
    dimension INTEGER NOT NULL,
    vector BLOB NOT NULL,
    used_at REAL NOT NULL DEFAULT (julianday('now'))
)
"""
CACHE_FILE = "embed-cache.sqlite3"
MAX_ENTRIES = 200_000  # ~800 MB at 1,024 dimensions would be absurd for a book: trim the oldest beyond this


def cache_path(data_dir: Path) -> Path:
    return data_dir / CACHE_FILE


def cache_key(model: str, dimension: int, input_type: str, text: str) -> str:
    digest = hashlib.sha256()
    for part in (model, str(dimension), input_type, text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


class EmbeddingCache:
    """A SQLite-backed map from ``cache_key`` to a vector. Use ``await EmbeddingCache.open(path)``."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> EmbeddingCache:
        return await asyncio.to_thread(cls._open, path)

    @classmethod
    def _open(cls, path: Path) -> EmbeddingCache:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            connection.commit()
        except sqlite3.DatabaseError:
            connection.close()
            # not a database (or a corrupt one): it is only a cache, start a new one
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
            connection = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            connection.commit()
        return cls(connection, path)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()

    async def get_many(self, keys: Sequence[str], dimension: int) -> dict[str, list[float]]:
        """The cached vectors among ``keys`` (of the given dimension)."""
        if not keys:
            return {}
        return await asyncio.to_thread(self._get_many, list(keys), dimension)

    def _get_many(self, keys: list[str], dimension: int) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                batch = keys[start : start + 500]
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    f"SELECT key, vector FROM embeddings WHERE dimension = ? AND key IN ({marks})",
                    [dimension, *batch],
                ).fetchall()
                for key, blob in rows:
                    vector = array("f")
                    vector.frombytes(blob)
                    if len(vector) == dimension:
                        found[key] = vector.tolist()
            if found:
                with self._db:
                    self._db.executemany(
                        "UPDATE embeddings SET used_at = julianday('now') WHERE key = ?", [(k,) for k in found]
                    )
        return found

    async def put_many(self, items: Iterable[tuple[str, Sequence[float]]]) -> int:
        """Store vectors (finite ones only); returns how many were stored."""
        rows = [
            (key, len(vector), array("f", vector).tobytes())
            for key, vector in items
            if vector and all(math.isfinite(x) for x in vector)
        ]
        if not rows:
            return 0
        await asyncio.to_thread(self._put_many, rows)
        return len(rows)

    def _put_many(self, rows: list[tuple[str, int, bytes]]) -> None:
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings (key, dimension, vector) VALUES (?, ?, ?)", rows)
            (count,) = self._db.execute("SELECT count(*) FROM embeddings").fetchone()
            if count > MAX_ENTRIES:
                self._db.execute(
                    "DELETE FROM embeddings WHERE key IN (SELECT key FROM embeddings ORDER BY used_at ASC LIMIT ?)",
                    (count - MAX_ENTRIES,),
                )

    async def count(self) -> int:
        return await asyncio.to_thread(self._count)

    def _count(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM embeddings").fetchone()
        return int(count)
