"""Indexing without Redis, for tests, evaluation, benchmarks and the in-process baseline: build a version
from a source now, or only when the serving collection cannot be used. The worker adds the re-index lock
and progress in Redis around the same ``IndexBuild`` (worker/reindex/job.py)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from shared.jobs import ReindexMode
from shared.redact import display_source
from shared.settings import Settings
from worker.knowledge.chunk_embedding import DocumentEmbedder
from worker.knowledge.embed_cache import EmbeddingCache, cache_path
from worker.knowledge.index_report import IndexReport
from worker.knowledge.indexing import IndexBuild
from worker.knowledge.store import KnowledgeStore
from worker.knowledge.version_checks import reason_to_index

log = logging.getLogger(__name__)


async def index_book(
    store: KnowledgeStore,
    source: Path | str,
    base_url: str,
    embedder: DocumentEmbedder | None,
    *,
    mode: ReindexMode = "full",
    cache: EmbeddingCache | None = None,
    embed_model: str = "",
) -> IndexReport:
    """Build a new version of the collection from ``source`` and serve it."""
    build = IndexBuild(
        store,
        source=str(source),
        base_url=base_url,
        embedder=embedder,
        embed_model=embed_model,
        cache=cache,
        mode=mode,
    )
    report = await build.run()
    for doc, reason in report.skipped:
        log.warning("skipped %s: %s", display_source(doc), reason)
    return report


async def ensure_indexed(
    store: KnowledgeStore, settings: Settings, embedder: DocumentEmbedder | None
) -> IndexReport | None:
    """Index ``BOOK_SOURCE`` unless a usable collection is already there; None when nothing was done."""
    reason = await reason_to_index(store, embedder is not None)
    if reason is None:
        log.info("collection %s ready at %s", store.collection, store.location)
        return None
    log.info("indexing %s into %s: %s", display_source(settings.book_source), store.collection, reason)
    cache = await EmbeddingCache.open(cache_path(settings.data_dir)) if embedder is not None else None
    try:
        return await index_book(
            store,
            settings.book_source,
            settings.book_base_url,
            embedder,
            cache=cache,
            embed_model=settings.cohere_embed_model,
        )
    finally:
        if cache is not None:
            with contextlib.suppress(Exception):
                await cache.close()
