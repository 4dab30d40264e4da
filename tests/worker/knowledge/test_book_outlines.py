"""The served documents' outlines, read in one pass per version and read again once the alias has moved."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import HashEmbedder, chapter, index_build, write_file
from worker.knowledge import book_outlines
from worker.knowledge.book_outlines import BookOutlines
from worker.knowledge.store import KnowledgeStore

ACTUATORS = "01-basics/01-actuators.md"


async def test_one_pass_gives_each_documents_outline(store: KnowledgeStore, book: Path) -> None:
    report = await index_build(store, book, embedder=HashEmbedder()).run()
    assert report.collection is not None
    every = await store.contents.outlines(report.collection)
    assert sorted(every) == ["01-basics/01-actuators.md", "01-basics/02-sensors.md", "02-control/01-balance.md"]
    for doc, outline in every.items():
        assert outline == await store.contents.outline(doc)

    outlines = BookOutlines(store)
    assert await outlines.outline(ACTUATORS) == [
        ("Actuators > Electric motors", "/docs/basics/actuators#electric-motors"),
        ("Actuators > Hydraulics", "/docs/basics/actuators#hydraulics"),
    ]
    assert await outlines.outline("absent.md") == []


async def test_a_new_version_is_read_once_the_alias_has_moved(
    store: KnowledgeStore, book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await index_build(store, book, embedder=HashEmbedder()).run()
    outlines = BookOutlines(store)
    assert len(await outlines.outline(ACTUATORS)) == 2

    write_file(book, ACTUATORS, chapter("Actuators", ("Electric motors", "Brushless motors turn current.")))
    await index_build(store, book, embedder=HashEmbedder()).run()
    assert len(await outlines.outline(ACTUATORS)) == 2  # looked up again only after RECHECK_S
    monkeypatch.setattr(book_outlines, "RECHECK_S", 0.0)
    assert await outlines.outline(ACTUATORS) == [
        ("Actuators > Electric motors", "/docs/basics/actuators#electric-motors")
    ]
