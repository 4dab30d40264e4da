"""Build the book's index as a new version, check it, and switch the alias to it.

This is the one code path of every (re-)index: the worker's first start, the admin API, the command line
and the schedule. ``IndexBuild.run`` goes through these stages, reporting each in its ``ReindexProgress``:

1. *reading*: every document of the source (a folder, or a sitemap's pages); bad ones are skipped with a
   reason.
2. *chunking*: new and changed documents only (incremental mode compares each document's fingerprint with
   the one stored in the serving version's points; a full job treats every document as new).
3. *embedding*: dense vectors for those chunks, from the embedding cache where possible, the rest from
   the embedder in calls of at most 96 texts; rate limits are waited out (up to ``embed_patience_s``).
4. *writing*: a new collection ``{alias}__v…`` is created and filled; *copying* brings over the points of
   unchanged documents from the serving version as they are (vectors included).
5. *verifying*: the point count must be exactly what was written and copied, and a probe query must find
   a chunk it knows is there.
6. *switching*: the alias moves to the new version in one alias operation; *cleaning up* drops the older
   versions.

Until step 6 nothing that queries read has changed, so a failure or a cancellation at any point leaves the
previous version serving; the half-built collection is dropped on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qdrant_client import models

from shared.jobs import ReindexMode
from shared.protocol import ErrorCode
from shared.redact import display_source
from shared.reindex import ReindexProgress, new_job_id
from shared.settings import Settings
from worker.cohere.failures import ProviderFailure
from worker.knowledge.documents import Chunk, DocumentError
from worker.knowledge.embed_cache import EmbeddingCache, cache_key, cache_path
from worker.knowledge.markdown_chunks import chunk_document
from worker.knowledge.markdown_parser import new_parser
from worker.knowledge.skip_report import log_skip_summary, nothing_to_index
from worker.knowledge.sources import LoadedSource, SourceDocument, SourceError, load_source
from worker.knowledge.store import DENSE_DISTANCE, KnowledgeStore, KnowledgeStoreError, point_id

log = logging.getLogger(__name__)

EMBED_BATCH = 96  # Cohere's embed endpoint takes at most 96 texts per request
EMBED_PATIENCE_S = 900.0  # how long rate limits are waited out, in total, before the job gives up
RATE_LIMIT_BACKOFF_S = 2.0
MAX_RATE_LIMIT_WAIT_S = 60.0
PROGRESS_EVERY_S = 0.25
PROBE_DEPTH = 10
CHUNKER_VERSION = "1"  # bump when chunking changes, so incremental jobs re-chunk every document


class DocumentEmbedder(Protocol):
    async def embed_documents(self, texts: list[str]) -> list[list[float]]: ...


ProgressSink = Callable[[ReindexProgress], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class IndexReport:
    documents: int
    chunks: int  # points in the new version
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (doc, reason)
    seconds: float = 0.0
    dense: bool = False
    collection: str | None = None
    previous: str | None = None
    mode: ReindexMode = "full"
    changed: bool = True  # False: an incremental job found nothing to do and kept the serving version


class IndexingError(RuntimeError):
    """The book could not be indexed; the serving version (if any) is untouched."""


def fingerprint(document: SourceDocument, base_url: str) -> str:
    """What a document's points were built from: text, where it is published, and the chunker's version."""
    digest = hashlib.sha256()
    for part in (CHUNKER_VERSION, base_url, document.page_url or "", document.title or "", document.text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


class IndexBuild:
    """One run of the pipeline above. ``progress`` is updated in place and handed to ``sink`` as it goes."""

    def __init__(
        self,
        store: KnowledgeStore,
        *,
        source: str,
        base_url: str,
        embedder: DocumentEmbedder | None,
        embed_model: str = "",
        cache: EmbeddingCache | None = None,
        mode: ReindexMode = "full",
        progress: ReindexProgress | None = None,
        sink: ProgressSink | None = None,
        embed_patience_s: float = EMBED_PATIENCE_S,
        rate_limit_backoff_s: float = RATE_LIMIT_BACKOFF_S,
    ) -> None:
        self.store = store
        self.source = source
        self.base_url = base_url
        self.embedder = embedder
        self.embed_model = embed_model
        self.cache = cache
        self.mode = mode
        self.progress = progress or ReindexProgress(job_id=new_job_id(), source=source, mode=mode)
        self._sink = sink
        self._embed_patience_s = embed_patience_s
        self._backoff_s = rate_limit_backoff_s
        self._last_emit = 0.0

    # --- progress -----------------------------------------------------------------------------------

    async def emit(self, *, force: bool = False) -> None:
        if self._sink is None:
            return
        now = time.monotonic()
        if not force and now - self._last_emit < PROGRESS_EVERY_S:
            return
        self._last_emit = now
        try:
            await self._sink(self.progress)
        except Exception as exc:  # progress is for people watching; never a reason to fail the job
            log.warning("could not record re-index progress: %s", type(exc).__name__)

    async def _stage(self, stage: str) -> None:
        self.progress.stage = stage
        await self.emit(force=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S * 2)
            await self.emit()

    # --- the pipeline -------------------------------------------------------------------------------

    async def run(self) -> IndexReport:
        started = time.perf_counter()
        p = self.progress
        p.status, p.started_at, p.dense = "running", time.time(), self.embedder is not None
        ticker = asyncio.create_task(self._tick(), name="reindex-progress")
        try:
            report = await self._run(started)
        except BaseException as exc:
            ticker.cancel()
            p.status, p.finished_at = "failed", time.time()
            p.error = _describe_failure(exc)
            p.stage = "done"
            await asyncio.shield(self.emit(force=True))
            raise
        ticker.cancel()
        p.status, p.stage, p.finished_at = "complete", "done", time.time()
        await self.emit(force=True)
        return report

    async def _run(self, started: float) -> IndexReport:
        p = self.progress
        dense = self.embedder is not None
        await self._stage("reading")
        loaded = await self._read()
        for skipped in loaded.skipped:
            p.skip(skipped.doc, skipped.reason)
        fingerprints = {d.doc: fingerprint(d, self.base_url) for d in loaded.documents}

        previous = await self.store.serving_collection()
        mode = await self._effective_mode(previous, dense)
        p.mode_used = mode
        unchanged: set[str] = set()
        to_chunk = loaded.documents
        if mode == "incremental" and previous is not None:
            stored = await self.store.documents(previous)
            unchanged = {doc for doc, fp in fingerprints.items() if stored.get(doc) == fp}
            # a page that could not be fetched this time keeps its previous version
            unchanged |= {s.doc for s in loaded.skipped if s.transient and s.doc in stored}
            to_chunk = [d for d in loaded.documents if d.doc not in unchanged]
            p.documents_new = sum(1 for d in to_chunk if d.doc not in stored)
            p.documents_changed = len(to_chunk) - p.documents_new
            p.documents_unchanged = len(unchanged)
            p.documents_deleted = len(set(stored) - set(fingerprints) - unchanged)
            if not to_chunk and not p.documents_deleted:
                p.message = "nothing changed: the serving version is up to date"
                p.collection = previous
                p.documents = len(unchanged)
                p.points = await self.store.count()
                await self._stage("done")
                return self._report(started, loaded, previous, previous, mode, changed=False)
        else:
            p.documents_new = len(to_chunk)

        await self._stage("chunking")
        chunks = await asyncio.to_thread(self._chunk, to_chunk)
        p.chunks = len(chunks)
        if not chunks and not unchanged:
            raise IndexingError(nothing_to_index(loaded))

        sparse = await asyncio.to_thread(self.store.encode_documents, chunks)
        vectors: list[list[float]] | None = None
        if dense:
            await self._stage("embedding")
            vectors = await self._embed(chunks)

        name = self.store.new_version_name()
        p.collection = name
        await self._stage("writing")
        await self.store.create_version(name, dense=dense)
        try:
            await self._write(name, chunks, sparse, vectors, fingerprints)
            if unchanged and previous is not None:
                await self._stage("copying")
                p.copied = await self.store.copy_documents(previous, name, unchanged)
            await self._stage("verifying")
            await self._verify(name, chunks, sparse, vectors)
            p.documents = len({c.doc for c in chunks} | unchanged)
            await self._stage("switching")
            replaced = await self.store.switch_alias(name, dense=dense)
            p.previous_collection = replaced
        except BaseException:
            await asyncio.shield(self._discard(name))
            raise
        await self._stage("cleaning up")
        await self._drop_older(name)
        log.info(
            "knowledge base %s now serves %s: %d documents, %d points (%s, %s mode); %d skipped",
            self.store.collection,
            name,
            p.documents,
            p.points or 0,
            "hybrid" if dense else "keywords only",
            mode,
            p.skipped_count,
        )
        return self._report(started, loaded, name, replaced, mode, changed=True)

    def _report(
        self,
        started: float,
        loaded: LoadedSource,
        collection: str | None,
        previous: str | None,
        mode: ReindexMode,
        *,
        changed: bool,
    ) -> IndexReport:
        p = self.progress
        return IndexReport(
            documents=p.documents,
            chunks=p.points or 0,
            skipped=[(s.doc, s.reason) for s in p.skipped],
            seconds=time.perf_counter() - started,
            dense=self.embedder is not None,
            collection=collection,
            previous=previous,
            mode=mode,
            changed=changed,
        )

    async def _read(self) -> LoadedSource:
        p = self.progress

        def on_progress(done: int, total: int) -> None:
            p.documents_read, p.documents_total = done, total

        try:
            loaded = await load_source(self.source, self.base_url, on_progress=on_progress)
        except SourceError as exc:
            for skipped in exc.skipped:
                p.skip(skipped.doc, skipped.reason)
            raise IndexingError(str(exc)) from exc
        p.documents_total = len(loaded.documents) + sum(1 for s in loaded.skipped if not s.outside)
        p.documents_read = p.documents_total
        log_skip_summary(log, loaded)
        return loaded

    async def _effective_mode(self, previous: str | None, dense: bool) -> ReindexMode:
        if self.mode == "full":
            return "full"
        why: str | None = None
        if previous is None:
            why = "there is no previous version"
        else:
            status = await self.store.status(previous)
            if status.error is not None:
                raise KnowledgeStoreError(status.error)
            if not status.has_sparse:
                why = "the previous version has no bm25 vectors"
            elif status.has_dense != dense:
                why = "dense vectors are now wanted" if dense else "dense vectors are no longer wanted"
            elif dense and status.dense_size != self.store.dense_size:
                why = f"the dense size changed ({status.dense_size} -> {self.store.dense_size})"
            elif dense and status.dense_distance != DENSE_DISTANCE.value:
                why = f"dense vectors are compared by {status.dense_distance}, not {DENSE_DISTANCE.value}"
        if why is None:
            return "incremental"
        self.progress.message = f"incremental became full: {why}"
        return "full"

    def _chunk(self, documents: Sequence[SourceDocument]) -> list[Chunk]:
        parser = new_parser()
        chunks: list[Chunk] = []
        for document in documents:
            try:
                found = chunk_document(
                    document.text,
                    document.doc,
                    self.base_url,
                    parser=parser,
                    page_url=document.page_url,
                    title=document.title,
                )
            except DocumentError as exc:
                self.progress.skip(document.doc, str(exc))
                continue
            if not found:
                self.progress.skip(document.doc, "no text to index")
                continue
            chunks.extend(found)
        return chunks

    async def _embed(self, chunks: Sequence[Chunk]) -> list[list[float]]:
        assert self.embedder is not None
        p = self.progress
        size = self.store.dense_size
        texts = [chunk.search_text for chunk in chunks]
        keys = [cache_key(self.embed_model, size, "search_document", text) for text in texts]
        vectors: dict[str, list[float]] = {}
        if self.cache is not None:
            vectors = await self.cache.get_many(keys, size)
        p.embed_cached = sum(1 for key in keys if key in vectors)
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in vectors:
                missing.setdefault(key, text)
        pending = list(missing.items())
        for start in range(0, len(pending), EMBED_BATCH):
            batch = pending[start : start + EMBED_BATCH]
            embedded = await self._embed_patiently([text for _, text in batch])
            _check_vectors(embedded, len(batch), size)
            for (key, _), vector in zip(batch, embedded, strict=True):
                vectors[key] = vector
            if self.cache is not None:
                await self.cache.put_many((key, vector) for (key, _), vector in zip(batch, embedded, strict=True))
            p.embedded += len(batch)
            await self.emit()
        return [vectors[key] for key in keys]

    async def _embed_patiently(self, texts: list[str]) -> list[list[float]]:
        assert self.embedder is not None
        waited = 0.0
        backoff = self._backoff_s
        while True:
            try:
                return await self.embedder.embed_documents(texts)
            except ProviderFailure as failure:
                if failure.code != ErrorCode.RATE_LIMITED:
                    raise IndexingError(f"embedding failed: {failure.message}") from failure
                delay = min(max(failure.retry_after or 0.0, backoff), MAX_RATE_LIMIT_WAIT_S)
                if waited + delay > self._embed_patience_s:
                    raise IndexingError(
                        f"the embedding service kept rate limiting for {waited:.0f}s; try again later"
                    ) from failure
                self.progress.rate_limited_waits += 1
                await self._stage(f"embedding (rate limited; retrying in {delay:.1f}s)")
                await asyncio.sleep(delay)
                waited += delay
                backoff = min(backoff * 2, MAX_RATE_LIMIT_WAIT_S)
                await self._stage("embedding")

    async def _write(
        self,
        name: str,
        chunks: Sequence[Chunk],
        sparse: Sequence[models.SparseVector],
        vectors: Sequence[Sequence[float]] | None,
        fingerprints: dict[str, str],
    ) -> None:
        step = 128
        for start in range(0, len(chunks), step):
            end = start + step
            await self.store.upsert(
                chunks[start:end],
                vectors[start:end] if vectors is not None else None,
                sparse_vectors=sparse[start:end],
                batch_size=step,
                collection=name,
                source_hashes=fingerprints,
            )
            self.progress.upserted += len(chunks[start:end])
            await self.emit()

    async def _verify(
        self,
        name: str,
        chunks: Sequence[Chunk],
        sparse: Sequence[models.SparseVector],
        vectors: Sequence[Sequence[float]] | None,
    ) -> None:
        p = self.progress
        expected = len(chunks) + p.copied
        count = await self.store.count(name)
        p.points = count
        if count != expected:
            raise IndexingError(f"the new version holds {count} points, {expected} were written")
        if count == 0:
            raise IndexingError("the new version is empty")
        probe = next((i for i, vector in enumerate(sparse) if len(vector.indices) >= 3), None)
        if probe is None:
            return  # only copied points (whose count was checked) or chunks without keywords
        chunk = chunks[probe]
        found = await self.store.search(
            chunk.search_text,
            vectors[probe] if vectors is not None else None,
            PROBE_DEPTH,
            collection=name,
        )
        if point_id(chunk.doc, chunk.position) not in {passage.id for passage in found}:
            raise IndexingError(f"the probe query did not find {chunk.doc} #{chunk.position} in the new version")

    async def _discard(self, name: str) -> None:
        """Drop a version that never started serving (it may have, if the switch went through)."""
        try:
            if await self.store.serving_collection() != name:
                await self.store.drop_version(name)
        except Exception as exc:
            log.warning("could not drop the unfinished version %s: %s", name, exc)

    async def _drop_older(self, keep: str) -> None:
        try:
            versions = await self.store.versions()
        except KnowledgeStoreError as exc:
            log.warning("could not list old versions: %s", exc)
            return
        for version in versions:
            if version == keep:
                continue
            try:
                await self.store.drop_version(version)
            except KnowledgeStoreError as exc:
                log.warning("could not drop old version %s: %s", version, exc)


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


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled; the previous version keeps serving"
    if isinstance(exc, IndexingError | KnowledgeStoreError):
        return str(exc)
    return f"unexpected error ({type(exc).__name__}); see the worker's log"


# --------------------------------------------------------------------------------------------------
# Entry points without Redis (tests, evaluation, benchmarks); the worker adds the lock and progress


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


async def reason_to_index(store: KnowledgeStore, want_dense: bool) -> str | None:
    """Why the serving collection cannot be used as it is (None: it can).

    Missing or empty, no ``bm25`` sparse vector, dense vectors present without an embedder or missing with
    one, or a dense size other than the configured one.
    """
    status = await store.status()
    if status.error is not None:
        raise KnowledgeStoreError(status.error)
    if not status.exists:
        return "collection missing"
    if status.points == 0:
        return "collection empty"
    if not status.has_sparse:
        return "collection has no bm25 sparse vector"
    if status.has_dense != want_dense:
        return "dense vectors wanted" if want_dense else "dense vectors no longer wanted"
    if want_dense and status.dense_size != store.dense_size:
        return f"dense size {status.dense_size} != {store.dense_size}"
    if want_dense and status.dense_distance != DENSE_DISTANCE.value:
        return f"dense distance {status.dense_distance} != {DENSE_DISTANCE.value}"
    return None


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
