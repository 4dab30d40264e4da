"""IndexBuild: versioned collections behind the alias, progress, incremental updates, failures that leave the
serving version alone, bad files skipped. Real embedded Qdrant under a temporary folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from qdrant_client import models

from shared.protocol import ErrorCode
from shared.reindex import ReindexProgress
from tests.factories import HashEmbedder, chapter, index_build, top_doc, write_book
from worker.cohere.failures import ProviderFailure
from worker.knowledge.index_report import IndexingError
from worker.knowledge.store import KnowledgeStore

# --- versions and the alias ------------------------------------------------------------------------


async def test_each_build_is_a_new_version_behind_the_alias(store: KnowledgeStore, book: Path) -> None:
    first = await index_build(store, book, embedder=None).run()
    assert first.collection is not None and store.versions.is_version(first.collection)
    assert first.previous is None
    status = await store.status()
    assert status.exists and status.serving == first.collection and status.points == first.chunks
    assert await top_doc(store, "hydraulic cylinders") == "01-basics/01-actuators.md"

    second = await index_build(store, book, embedder=None).run()
    assert second.collection != first.collection
    assert second.previous == first.collection
    assert await store.versions.names() == [second.collection]  # the old version was dropped
    assert (await store.status()).serving == second.collection
    assert await top_doc(store, "hydraulic cylinders") == "01-basics/01-actuators.md"


async def test_a_collection_from_before_versioning_is_replaced_by_the_alias(store: KnowledgeStore, book: Path) -> None:
    # what an earlier deployment left: a plain collection under the alias's own name
    backend = store._backend
    await backend.create_collection(
        store.collection, {}, {"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)}
    )
    assert await store.versions.serving() == store.collection
    report = await index_build(store, book, embedder=None).run()
    assert report.previous is None
    assert await store.versions.serving() == report.collection
    assert store.collection not in await backend.collection_names()
    assert await top_doc(store, "encoders joint angles") == "01-basics/02-sensors.md"


async def test_progress_reports_every_stage(store: KnowledgeStore, book: Path) -> None:
    seen: list[tuple[str, str]] = []

    async def sink(progress: ReindexProgress) -> None:
        seen.append((progress.status, progress.stage))

    job = index_build(store, book, embedder=None, sink=sink)
    await job.run()
    stages = [stage for _, stage in seen]
    for stage in ("reading", "chunking", "writing", "verifying", "switching", "cleaning up", "done"):
        assert stage in stages
    assert seen[-1] == ("complete", "done")
    p = job.progress
    assert (p.documents_total, p.documents_read, p.documents, p.documents_new) == (3, 3, 3, 3)
    assert p.chunks == p.upserted == p.points == 6
    assert p.mode_used == "full" and p.started_at and p.finished_at and p.error is None


# --- incremental mode ------------------------------------------------------------------------------


async def test_incremental_touches_only_new_changed_and_deleted_documents(store: KnowledgeStore, book: Path) -> None:
    first = await index_build(store, book, embedder=None).run()
    (book / "01-basics/02-sensors.md").write_text(
        chapter("Sensors", ("Force sensors", "Six-axis force sensors in the ankles measure ground reaction.")),
        encoding="utf-8",
    )
    (book / "02-control/01-balance.md").unlink()
    write_book(
        book, {"03-ai/01-policies.md": chapter("Policies", ("Learning", "A policy maps observations to actions."))}
    )

    job = index_build(store, book, embedder=None, mode="incremental")
    report = await job.run()
    p = job.progress
    assert p.mode_used == "incremental"
    assert (p.documents_new, p.documents_changed, p.documents_unchanged, p.documents_deleted) == (1, 1, 1, 1)
    assert p.chunks == 2  # one chunk for each of the new and the changed chapter; nothing else re-chunked
    assert p.copied == 2  # the actuators chapter's two chunks, vectors and all
    assert report.chunks == p.points == 4
    assert report.previous == first.collection
    assert await top_doc(store, "six-axis force sensors ankles") == "01-basics/02-sensors.md"
    assert await top_doc(store, "policy observations actions") == "03-ai/01-policies.md"
    assert await top_doc(store, "hydraulic cylinders") == "01-basics/01-actuators.md"
    assert await store.search("support polygon capture step", None, 5) == []  # deleted with its chapter


async def test_incremental_with_nothing_changed_keeps_the_serving_version(store: KnowledgeStore, book: Path) -> None:
    first = await index_build(store, book, embedder=None).run()
    job = index_build(store, book, embedder=None, mode="incremental")
    report = await job.run()
    assert not report.changed and report.collection == first.collection
    assert job.progress.status == "complete" and "nothing changed" in (job.progress.message or "")
    assert await store.versions.names() == [first.collection]


async def test_incremental_becomes_full_when_the_schema_changes(store: KnowledgeStore, book: Path) -> None:
    first_job = index_build(store, book, embedder=None, mode="incremental")
    await first_job.run()
    assert first_job.progress.mode_used == "full" and "no previous version" in (first_job.progress.message or "")
    job = index_build(store, book, embedder=HashEmbedder(), mode="incremental")
    await job.run()
    assert job.progress.mode_used == "full" and "dense vectors are now wanted" in (job.progress.message or "")
    assert (await store.status()).has_dense


# --- failures leave the serving version alone -------------------------------------------------------


class FailingEmbedder(HashEmbedder):
    def __init__(self, fail_on_call: int) -> None:
        super().__init__()
        self.fail_on_call = fail_on_call

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if len(self.batches) + 1 == self.fail_on_call:
            raise ProviderFailure(ErrorCode.PROVIDER_ERROR, "the language model failed (500)")
        return await super().embed_documents(texts)


async def test_a_failed_build_leaves_the_old_version_serving(store: KnowledgeStore, book: Path, tmp_path: Path) -> None:
    good = await index_build(store, book, embedder=HashEmbedder()).run()
    bigger = write_book(
        tmp_path / "bigger", {f"c{i}.md": chapter(f"C{i}", ("Part", f"Motor {i} " * 30)) for i in range(120)}
    )
    job = index_build(store, bigger, embedder=FailingEmbedder(fail_on_call=2))
    with pytest.raises(IndexingError, match="embedding failed"):
        await job.run()
    assert job.progress.status == "failed" and "embedding failed" in (job.progress.error or "")
    assert await store.versions.names() == [good.collection]
    assert (await store.status()).serving == good.collection
    assert await top_doc(store, "hydraulic cylinders") == "01-basics/01-actuators.md"


async def test_a_source_without_text_fails_and_changes_nothing(
    store: KnowledgeStore, book: Path, tmp_path: Path
) -> None:
    good = await index_build(store, book, embedder=None).run()
    empty = write_book(tmp_path / "empty", {"blank.md": "   \n", "only-front.md": "---\ntitle: X\n---\n"})
    job = index_build(store, empty, embedder=None)
    with pytest.raises(IndexingError, match="no file to index: 1 of 2 skipped, 1 because empty file"):
        await job.run()
    assert {s.doc for s in job.progress.skipped} == {"blank.md", "only-front.md"}
    assert await store.versions.names() == [good.collection]


class BlockingEmbedder(HashEmbedder):
    """Embeds the first batch, then waits on ``release`` (never set in the test) while holding the job."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.batches:
            self.waiting.set()
            await self.release.wait()
        return await super().embed_documents(texts)


async def test_a_cancelled_build_drops_its_collection_and_keeps_the_old_one(
    store: KnowledgeStore, book: Path, tmp_path: Path
) -> None:
    good = await index_build(store, book, embedder=HashEmbedder()).run()
    bigger = write_book(
        tmp_path / "bigger", {f"c{i}.md": chapter(f"C{i}", ("Part", f"Joint {i} " * 30)) for i in range(150)}
    )
    embedder = BlockingEmbedder()
    job = index_build(store, bigger, embedder=embedder)
    task = asyncio.create_task(job.run())
    await embedder.waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert job.progress.status == "failed" and "cancelled" in (job.progress.error or "")
    assert await store.versions.names() == [good.collection]
    assert (await store.status()).serving == good.collection


async def test_cancelled_before_the_switch_drops_the_filled_version(
    store: KnowledgeStore, book: Path, tmp_path: Path
) -> None:
    good = await index_build(store, book, embedder=None).run()
    bigger = write_book(
        tmp_path / "bigger", {f"c{i}.md": chapter(f"C{i}", ("Part", f"Gear {i} " * 30)) for i in range(50)}
    )
    verifying, hold = asyncio.Event(), asyncio.Event()

    async def sink(progress: ReindexProgress) -> None:
        if progress.stage == "verifying":  # the new version is filled, the alias not yet moved
            verifying.set()
            await hold.wait()

    job = index_build(store, bigger, embedder=None, sink=sink)
    task = asyncio.create_task(job.run())
    await verifying.wait()
    assert job.progress.collection in await store.versions.names()
    assert (await store.count(job.progress.collection)) == 50
    assert (await store.status()).serving == good.collection
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.versions.names() == [good.collection]
    assert (await store.status()).serving == good.collection


async def test_bad_files_are_skipped_with_reasons_and_the_job_completes(store: KnowledgeStore, book: Path) -> None:
    write_book(
        book,
        {
            "bad/binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "bad/latin1.md": "# Caf\xe9\n\nna\xefve text".encode("latin-1"),
            "bad/empty.md": "",
            "bad/front.md": "---\ntitle: [unclosed\n---\n\n# Body\n\ntext\n",
            "bad/huge.md": "# Huge\n\n" + "word " * 450_000,
        },
    )
    os.symlink(book / "does-not-exist.md", book / "bad" / "dangling.md")
    job = index_build(store, book, embedder=None)
    report = await job.run()
    reasons = {s.doc: s.reason for s in job.progress.skipped}
    assert reasons["bad/binary.md"].startswith("binary file")
    assert reasons["bad/latin1.md"].startswith("not valid UTF-8")
    assert reasons["bad/empty.md"] == "empty file"
    assert reasons["bad/front.md"].startswith("invalid front matter")
    assert reasons["bad/huge.md"].startswith("too large")
    assert reasons["bad/dangling.md"].startswith("unreadable")
    assert job.progress.status == "complete" and report.documents == 3
    assert job.progress.skipped_count == 6
