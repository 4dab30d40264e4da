"""Build the book's index as a new version, check it, and switch the alias to it.

This is the one code path of every (re-)index: the worker's first start, the admin API, the command line
and the schedule. ``IndexBuild.run`` goes through these stages, reporting each in its ``ReindexProgress``:

1. *reading*: every document of the source (a folder, or a sitemap's pages); bad ones are skipped with a
   reason.
2. *chunking*: new and changed documents only (incremental mode compares fingerprints with the serving
   version's, ``document_changes``; a full job treats every document as new).
3. *embedding*: dense vectors for those chunks (``chunk_embedding``).
4. *writing*: a new collection ``{alias}__v…`` is created and filled; *copying* brings over the points of
   unchanged documents from the serving version as they are (vectors included).
5. *verifying*: exact point count and a probe query (``version_checks``).
6. *switching*: the alias moves to the new version in one alias operation; *cleaning up* drops the older
   versions.

Until step 6 nothing that queries read has changed, so a failure or a cancellation at any point leaves the
previous version serving; the half-built collection is dropped on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from qdrant_client import models

from shared.jobs import ReindexMode
from shared.reindex import ReindexProgress, new_job_id
from worker.knowledge.chunk_embedding import EMBED_PATIENCE_S, RATE_LIMIT_BACKOFF_S, ChunkEmbedder, DocumentEmbedder
from worker.knowledge.document_changes import compare_documents, fingerprint
from worker.knowledge.documents import Chunk, DocumentError
from worker.knowledge.embed_cache import EmbeddingCache
from worker.knowledge.index_progress import ProgressReporter, ProgressSink
from worker.knowledge.index_report import IndexingError, IndexReport, describe_failure
from worker.knowledge.markdown_chunks import chunk_document
from worker.knowledge.markdown_parser import new_parser
from worker.knowledge.qdrant_errors import KnowledgeStoreError
from worker.knowledge.skip_report import log_skip_summary, nothing_to_index
from worker.knowledge.sources import LoadedSource, SourceDocument, SourceError, load_source
from worker.knowledge.store import KnowledgeStore
from worker.knowledge.version_checks import schema_mismatch, verify_version

log = logging.getLogger(__name__)

WRITE_BATCH = 128


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
        self.reporter = ProgressReporter(self.progress, sink)
        self._embed_patience_s = embed_patience_s
        self._backoff_s = rate_limit_backoff_s

    async def run(self) -> IndexReport:
        started = time.perf_counter()
        p = self.progress
        p.status, p.started_at, p.dense = "running", time.time(), self.embedder is not None
        try:
            async with self.reporter.ticking():
                report = await self._run(started)
        except BaseException as exc:
            p.status, p.finished_at = "failed", time.time()
            p.error = describe_failure(exc)
            p.stage = "done"
            await asyncio.shield(self.reporter.emit(force=True))
            raise
        p.status, p.stage, p.finished_at = "complete", "done", time.time()
        await self.reporter.emit(force=True)
        return report

    async def _run(self, started: float) -> IndexReport:
        p = self.progress
        dense = self.embedder is not None
        await self.reporter.stage("reading")
        loaded = await self._read()
        for skipped in loaded.skipped:
            p.skip(skipped.doc, skipped.reason)
        fingerprints = {d.doc: fingerprint(d, self.base_url) for d in loaded.documents}

        previous = await self.store.versions.serving()
        mode = await self._effective_mode(previous, dense)
        p.mode_used = mode
        unchanged: set[str] = set()
        to_chunk = loaded.documents
        if mode == "incremental" and previous is not None:
            changes = compare_documents(loaded, fingerprints, await self.store.contents.documents(previous))
            unchanged, to_chunk = changes.unchanged, changes.to_chunk
            p.documents_new, p.documents_changed = changes.new, changes.changed
            p.documents_unchanged, p.documents_deleted = len(unchanged), changes.deleted
            if not to_chunk and not p.documents_deleted:
                p.message = "nothing changed: the serving version is up to date"
                p.collection = previous
                p.documents = len(unchanged)
                p.points = await self.store.count()
                await self.reporter.stage("done")
                return self._report(started, loaded, previous, previous, mode, changed=False)
        else:
            p.documents_new = len(to_chunk)

        await self.reporter.stage("chunking")
        chunks = await asyncio.to_thread(self._chunk, to_chunk)
        p.chunks = len(chunks)
        if not chunks and not unchanged:
            raise IndexingError(nothing_to_index(loaded))

        sparse = await asyncio.to_thread(self.store.encode_documents, chunks)
        vectors: list[list[float]] | None = None
        if dense:
            await self.reporter.stage("embedding")
            vectors = await self._embedder().embed(chunks)

        name = self.store.versions.new_name()
        p.collection = name
        await self.reporter.stage("writing")
        await self.store.versions.create(name, dense=dense)
        try:
            await self._write(name, chunks, sparse, vectors, fingerprints)
            if unchanged and previous is not None:
                await self.reporter.stage("copying")
                p.copied = await self.store.contents.copy_documents(previous, name, unchanged)
            await self.reporter.stage("verifying")
            p.points = await self.store.count(name)
            await verify_version(
                self.store, name, chunks, sparse, vectors, count=p.points, expected=len(chunks) + p.copied
            )
            p.documents = len({c.doc for c in chunks} | unchanged)
            await self.reporter.stage("switching")
            replaced = await self.store.versions.switch_to(name, dense=dense)
            p.previous_collection = replaced
        except BaseException:
            await asyncio.shield(self._discard(name))
            raise
        await self.reporter.stage("cleaning up")
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
            why = schema_mismatch(status, want_dense=dense, dense_size=self.store.dense_size)
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

    def _embedder(self) -> ChunkEmbedder:
        assert self.embedder is not None
        return ChunkEmbedder(
            self.embedder,
            self.reporter,
            model=self.embed_model,
            size=self.store.dense_size,
            cache=self.cache,
            patience_s=self._embed_patience_s,
            backoff_s=self._backoff_s,
        )

    async def _write(
        self,
        name: str,
        chunks: Sequence[Chunk],
        sparse: Sequence[models.SparseVector],
        vectors: Sequence[Sequence[float]] | None,
        fingerprints: dict[str, str],
    ) -> None:
        step = WRITE_BATCH
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
            await self.reporter.emit()

    async def _discard(self, name: str) -> None:
        """Drop a version that never started serving (it may have, if the switch went through)."""
        try:
            if await self.store.versions.serving() != name:
                await self.store.versions.drop(name)
        except Exception as exc:
            log.warning("could not drop the unfinished version %s: %s", name, exc)

    async def _drop_older(self, keep: str) -> None:
        try:
            versions = await self.store.versions.names()
        except KnowledgeStoreError as exc:
            log.warning("could not list old versions: %s", exc)
            return
        for version in versions:
            if version == keep:
                continue
            try:
                await self.store.versions.drop(version)
            except KnowledgeStoreError as exc:
                log.warning("could not drop old version %s: %s", version, exc)
