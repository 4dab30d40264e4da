"""The embedded-mode speed-ups change how fast Qdrant answers, never what it answers."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from qdrant_client import models
from qdrant_client.local import sparse_distances

from tests.factories import knowledge_settings
from worker.knowledge import local_tuning
from worker.knowledge.store import KnowledgeStore

index_lists = st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=60, unique=True).map(sorted)
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def sparse_vectors(draw: st.DrawFn) -> models.SparseVector:
    indices = draw(index_lists)
    return models.SparseVector(indices=indices, values=[draw(values) for _ in indices])


@settings(max_examples=400, deadline=None)
@given(sparse_vectors(), sparse_vectors())
def test_fast_sparse_dot_product_equals_the_original(a: models.SparseVector, b: models.SparseVector) -> None:
    expected = local_tuning.original_sparse_dot_product(a, b)
    got = local_tuning.fast_sparse_dot_product(a, b)
    assert (expected is None) == (got is None)
    if expected is not None:
        assert got == expected  # bit for bit: same products, added in the same order


async def test_the_embedded_store_installs_it_and_tunes_new_collections(tmp_path: Path) -> None:
    store = await KnowledgeStore.open(knowledge_settings(tmp_path))
    try:
        assert sparse_distances.sparse_dot_product is local_tuning.fast_sparse_dot_product
        name = store.versions.new_name()
        await store.versions.create(name, dense=False)
        client = store._backend._client  # type: ignore[attr-defined]
        connection = local_tuning._connection(client, name)
        assert connection is not None
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        await store.close()
