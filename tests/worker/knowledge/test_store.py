"""KnowledgeStore: keyword and hybrid search, citations, writing, against qdrant-client's real embedded mode
(no mocks, no network)."""

from __future__ import annotations

import uuid

import pytest

from shared.settings import Settings
from tests.factories import DIM, SAMPLE_BOOK, HashEmbedder
from worker.knowledge.markdown_chunks import chunk_book
from worker.knowledge.point_layout import point_id
from worker.knowledge.standalone_indexing import ensure_indexed, index_book
from worker.knowledge.store import KnowledgeStore

# --- keyword search ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "doc"),
    [
        ("What is a ROS 2 topic?", "02-ros2/01-nodes-and-topics.md"),
        ("How does a humanoid keep its balance (ZMP)?", "03-simulation-and-control/02-humanoid-balance.md"),
        ("What is sim-to-real transfer?", "03-simulation-and-control/01-gazebo-and-isaac.md"),
        ("What does a URDF describe?", "02-ros2/02-urdf-and-tf.md"),
        ("What is a VLA model?", "04-vla/01-vision-language-action.md"),
    ],
)
async def test_keyword_search_finds_the_right_chapter(
    store: KnowledgeStore, settings: Settings, question: str, doc: str
) -> None:
    await ensure_indexed(store, settings, None)
    passages = await store.search(question, None, 5)
    assert len(passages) == 5
    assert passages[0].doc == doc
    assert passages[0].score >= passages[-1].score
    top = passages[0]
    assert top.text and top.title and top.heading
    assert uuid.UUID(top.id)


async def test_passages_carry_citations(store: KnowledgeStore, settings: Settings) -> None:
    await ensure_indexed(store, settings, None)
    (top,) = await store.search("What is a zero moment point?", None, 1)
    assert top.url == "/docs/simulation-and-control/balance-and-zmp#the-zero-moment-point-zmp"
    assert top.title == "How Humanoids Keep Their Balance"
    assert top.heading == "How Humanoids Keep Their Balance > The zero moment point (ZMP)"
    assert "support polygon" in top.text


async def test_question_without_keywords_returns_nothing(store: KnowledgeStore, settings: Settings) -> None:
    await ensure_indexed(store, settings, None)
    assert await store.search("what is it?", None, 5) == []
    with pytest.raises(ValueError):
        await store.search("robot", None, 0)


async def test_point_ids_are_deterministic_and_reindexing_does_not_duplicate(
    store: KnowledgeStore, settings: Settings
) -> None:
    assert point_id("a.md", 3) == point_id("a.md", 3)
    assert point_id("a.md", 3) != point_id("a.md", 4) != point_id("b.md", 3)
    first = await index_book(store, SAMPLE_BOOK, "/docs", None)
    chunks = chunk_book(SAMPLE_BOOK, "/docs").chunks
    await store.upsert(chunks, None)  # same ids again: overwrite, not append
    assert (await store.status()).points == first.chunks == len(chunks)


async def test_index_survives_reopening(settings: Settings) -> None:
    store = await KnowledgeStore.open(settings)
    report = await ensure_indexed(store, settings, None)
    await store.close()
    assert report is not None
    reopened = await KnowledgeStore.open(settings)
    try:
        assert (await reopened.status()).points == report.chunks
        assert await ensure_indexed(reopened, settings, None) is None
        assert (await reopened.search("URDF joint types", None, 1))[0].doc == "02-ros2/02-urdf-and-tf.md"
    finally:
        await reopened.close()


# --- dense vectors and hybrid search -------------------------------------------------------------


async def test_hybrid_search_and_switching_dense_on_and_off(store: KnowledgeStore, settings: Settings) -> None:
    embedder = HashEmbedder()
    report = await ensure_indexed(store, settings, embedder)
    assert report is not None and report.dense
    status = await store.status()
    assert status.has_dense and status.dense_size == DIM and status.points == report.chunks

    question = "What is a ROS 2 topic?"
    passages = await store.search(question, embedder.vector(question), 5)
    assert passages[0].doc == "02-ros2/01-nodes-and-topics.md"
    assert all(p.score <= 1.0 for p in passages)  # reciprocal-rank scores, not BM25 scores

    # same schema: nothing to do; without an embedder: re-index keyword-only; and back again
    assert await ensure_indexed(store, settings, embedder) is None
    sparse_only = await ensure_indexed(store, settings, None)
    assert sparse_only is not None and not sparse_only.dense
    assert not (await store.status()).has_dense
    assert await ensure_indexed(store, settings, None) is None
    assert await ensure_indexed(store, settings, embedder) is not None
    assert (await store.status()).has_dense


async def test_dense_prefetch_really_takes_part(store: KnowledgeStore, settings: Settings) -> None:
    embedder = HashEmbedder()
    await ensure_indexed(store, settings, embedder)
    target = next(c for c in chunk_book(SAMPLE_BOOK, "/docs").chunks if c.url.endswith("#capture-point"))
    # no keyword survives stop-word removal, so only the dense vector can find the chunk
    passages = await store.search("what is it?", embedder.vector(target.search_text), 3)
    assert passages[0].id == point_id(target.doc, target.position)


async def test_query_vector_on_a_keyword_only_collection_falls_back(store: KnowledgeStore, settings: Settings) -> None:
    await ensure_indexed(store, settings, None)
    await store.status()
    passages = await store.search("What is a VLA model?", HashEmbedder().vector("vla"), 3)
    assert passages[0].doc == "04-vla/01-vision-language-action.md"
