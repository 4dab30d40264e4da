"""Reading collections whole: the documents and their fingerprints, a document's outline, copying points."""

from __future__ import annotations

from pathlib import Path

from tests.factories import HashEmbedder, index_build
from worker.knowledge.store import KnowledgeStore


async def test_documents_outline_and_copies_of_a_built_version(store: KnowledgeStore, book: Path) -> None:
    report = await index_build(store, book, embedder=HashEmbedder()).run()
    assert report.collection is not None
    documents = await store.contents.documents(report.collection)
    assert sorted(documents) == ["01-basics/01-actuators.md", "01-basics/02-sensors.md", "02-control/01-balance.md"]
    assert all(len(fp) == 64 for fp in documents.values())

    assert await store.contents.outline("01-basics/01-actuators.md") == [
        ("Actuators > Electric motors", "/docs/basics/actuators#electric-motors"),
        ("Actuators > Hydraulics", "/docs/basics/actuators#hydraulics"),
    ]
    assert await store.contents.outline("absent.md") == []

    batches = [batch async for batch in store.contents.section_texts(report.collection)]
    assert sum(len(batch) for batch in batches) == 6

    target = store.versions.new_name()
    await store.versions.create(target, dense=True)
    copied = await store.contents.copy_documents(report.collection, target, {"01-basics/02-sensors.md"})
    assert copied == 2 and await store.count(target) == 2
    assert list(await store.contents.documents(target)) == ["01-basics/02-sensors.md"]
    assert await store.contents.copy_documents(report.collection, target, set()) == 0
