"""A chunk's point: a stable id, its vectors under their names, a payload that reads back as the passage."""

from __future__ import annotations

import math

from qdrant_client import models

from worker.knowledge.documents import Chunk
from worker.knowledge.point_layout import (
    DENSE_VECTOR,
    SPARSE_VECTOR,
    chunk_point,
    passage_from_point,
    point_id,
    unit_vector,
    vector_schema,
)

CHUNK = Chunk(
    doc="02-ros2/01-nodes-and-topics.md",
    title="Nodes and Topics",
    heading="Nodes and Topics > Topics",
    url="/docs/ros2/nodes-and-topics#topics",
    position=3,
    text="A topic is a named bus.",
    content_hash="abc",
)


def test_point_ids_depend_on_document_and_position_only() -> None:
    assert point_id("a.md", 3) == point_id("a.md", 3)
    assert len({point_id("a.md", 3), point_id("a.md", 4), point_id("b.md", 3)}) == 3


def test_unit_vector_has_length_one_and_keeps_the_zero_vector() -> None:
    assert math.isclose(math.hypot(*unit_vector([3.0, 4.0])), 1.0)
    assert unit_vector([3.0, 4.0]) == [0.6, 0.8]
    assert unit_vector([0.0, 0.0]) == [0.0, 0.0]


def test_a_point_reads_back_as_the_passage_of_its_chunk() -> None:
    sparse = models.SparseVector(indices=[1, 7], values=[0.5, 1.5])
    point = chunk_point(CHUNK, sparse, [3.0, 4.0], "fingerprint")
    assert point.id == point_id(CHUNK.doc, CHUNK.position)
    assert isinstance(point.vector, dict)
    assert point.vector[SPARSE_VECTOR] == sparse and point.vector[DENSE_VECTOR] == [0.6, 0.8]
    assert point.payload is not None and point.payload["source_hash"] == "fingerprint"
    scored = models.ScoredPoint(id=point.id, version=0, score=0.25, payload=point.payload)
    passage = passage_from_point(scored)
    assert (passage.id, passage.doc, passage.title, passage.heading, passage.url, passage.text, passage.score) == (
        point.id,
        CHUNK.doc,
        CHUNK.title,
        CHUNK.heading,
        CHUNK.url,
        CHUNK.text,
        0.25,
    )


def test_a_chunk_without_keywords_has_no_sparse_vector() -> None:
    point = chunk_point(CHUNK, models.SparseVector(indices=[], values=[]), None)
    assert point.vector == {}


def test_the_dense_vector_is_in_the_schema_only_when_wanted() -> None:
    vectors, sparse = vector_schema(64, dense=True)
    assert vectors[DENSE_VECTOR].size == 64 and sparse[SPARSE_VECTOR].modifier == models.Modifier.IDF
    assert vector_schema(64, dense=False)[0] == {}
