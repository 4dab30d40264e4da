"""Build the book's index: chunk the Markdown, encode, embed (optional), replace the collection.

Everything that can fail slowly or for outside reasons (reading files, embedding through a provider) runs
before the collection is touched, so a failed run leaves the previous index in place.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shared.settings import Settings
from worker.knowledge.markdown_chunks import ChunkedBook, chunk_book
from worker.knowledge.store import KnowledgeStore, KnowledgeStoreError

log = logging.getLogger(__name__)

EMBED_BATCH = 96  # Cohere's embed endpoint takes at most 96 texts per request


class DocumentEmbedder(Protocol):
    async def embed_documents(self, texts: list[str]) -> list[list[float]]: ...


@dataclass(frozen=True, slots=True)
class IndexReport:
    documents: int
    chunks: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (doc, reason)
    seconds: float = 0.0
    dense: bool = False


class IndexingError(RuntimeError):
    """The book could not be indexed; the previous collection (if any) is untouched."""


async def index_book(
    store: KnowledgeStore, source: Path, base_url: str, embedder: DocumentEmbedder | None
) -> IndexReport:
    """Replace the collection with the book at ``source``; dense vectors too when an embedder is given."""
    started = time.perf_counter()
    try:
        book: ChunkedBook = await asyncio.to_thread(chunk_book, source, base_url)
    except FileNotFoundError as exc:
        raise IndexingError(str(exc)) from exc
    if not book.chunks:
        raise IndexingError(f"no Markdown text to index under {source}")
    sparse = await asyncio.to_thread(store.encode_documents, book.chunks)

    dense: list[list[float]] | None = None
    if embedder is not None:
        texts = [chunk.search_text for chunk in book.chunks]
        dense = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            vectors = await embedder.embed_documents(batch)
            _check_vectors(vectors, len(batch), store.dense_size)
            dense.extend(vectors)

    await store.recreate(dense=dense is not None)
    await store.upsert(book.chunks, dense, sparse_vectors=sparse)
    report = IndexReport(
        documents=book.documents,
        chunks=len(book.chunks),
        skipped=[(item.doc, item.reason) for item in book.skipped],
        seconds=time.perf_counter() - started,
        dense=dense is not None,
    )
    log.info(
        "indexed %d documents as %d chunks (%s) in %.2fs; %d files skipped",
        report.documents,
        report.chunks,
        "hybrid" if report.dense else "keywords only",
        report.seconds,
        len(report.skipped),
    )
    for doc, reason in report.skipped:
        log.warning("skipped %s: %s", doc, reason)
    return report


def _check_vectors(vectors: list[list[float]], expected: int, size: int) -> None:
    if len(vectors) != expected:
        raise IndexingError(f"the embedder returned {len(vectors)} vectors for {expected} texts")
    for vector in vectors:
        if len(vector) != size:
            raise IndexingError(
                f"the embedder returned {len(vector)}-dimensional vectors, COHERE_EMBED_DIMENSION is {size}"
            )
        if not all(math.isfinite(x) for x in vector):
            raise IndexingError("the embedder returned a vector with NaN or infinite values")


async def ensure_indexed(
    store: KnowledgeStore, settings: Settings, embedder: DocumentEmbedder | None
) -> IndexReport | None:
    """Index the book unless a usable collection is already there; returns None when nothing was done.

    Re-indexes when the collection is missing or empty, or its schema does not fit the run: dense vectors
    present without an embedder or missing with one, a dense size other than the configured one, or no
    ``bm25`` sparse vector.
    """
    status = await store.status()
    if status.error is not None:
        raise KnowledgeStoreError(status.error)
    want_dense = embedder is not None
    reason = None
    if not status.exists:
        reason = "collection missing"
    elif status.points == 0:
        reason = "collection empty"
    elif not status.has_sparse:
        reason = "collection has no bm25 sparse vector"
    elif status.has_dense != want_dense:
        reason = "dense vectors wanted" if want_dense else "dense vectors no longer wanted"
    elif want_dense and status.dense_size != store.dense_size:
        reason = f"dense size {status.dense_size} != {store.dense_size}"
    if reason is None:
        log.info("collection %s ready at %s (%d points)", store.collection, status.location, status.points)
        return None
    log.info("indexing %s into %s: %s", settings.book_source, store.collection, reason)
    return await index_book(store, Path(settings.book_source), settings.book_base_url, embedder)
