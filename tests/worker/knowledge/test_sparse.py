"""The BM25-style sparse encoder: tokens, stems, stable indices, saturation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.knowledge.sparse import SparseEncoder, term_index

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def encoder() -> SparseEncoder:
    return SparseEncoder()


def test_terms_are_lowercased_stemmed_and_without_stop_words(encoder: SparseEncoder) -> None:
    assert encoder.terms("The Robots are RUNNING on ROS 2") == ["robot", "run", "ros", "2"]
    assert encoder.terms("create_publisher(String, 'chatter')") == ["creat", "publish", "string", "chatter"]
    assert encoder.terms("What is it?") == []


def test_inflections_share_an_index(encoder: SparseEncoder) -> None:
    robots = encoder.encode_query("robots")
    robot = encoder.encode_query("robot")
    assert robots.indices == robot.indices == [term_index("robot")]
    assert encoder.encode_query("balancing").indices == encoder.encode_query("balance").indices


def test_indices_are_fixed_crc32_values() -> None:
    # Stored vectors must stay valid across restarts and machines: these numbers may never change.
    assert term_index("robot") == 3626729188
    assert term_index("topic") == 2638274075
    assert all(0 <= term_index(word) < 2**32 for word in ["a", "zmp", "ünïcode", "x" * 40])


def test_indices_do_not_depend_on_the_process_hash_seed(encoder: SparseEncoder) -> None:
    script = (
        "from worker.knowledge.sparse import SparseEncoder;"
        "print(SparseEncoder().encode_query('humanoid balance with zero moment point').indices)"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.add(done.stdout.strip())
    assert outputs == {str(encoder.encode_query("humanoid balance with zero moment point").indices)}


def test_query_vector_is_one_per_unique_term(encoder: SparseEncoder) -> None:
    vector = encoder.encode_query("topic topics TOPIC node")
    assert len(vector.indices) == 2
    assert vector.indices == sorted(vector.indices)
    assert vector.values == [1.0, 1.0]


def test_document_weights_follow_bm25_saturation() -> None:
    encoder = SparseEncoder(k1=1.2, b=0.75, avg_doc_len=4)
    vector = encoder.encode_document("robot robot walks fast")  # 4 terms: length equals the average
    weights = dict(zip(vector.indices, vector.values, strict=True))
    # tf * (k1 + 1) / (tf + k1 * (1 - b + b * 4 / 4)) = tf * 2.2 / (tf + 1.2)
    assert weights[term_index("robot")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert weights[term_index("walk")] == pytest.approx(2.2 / (1 + 1.2))


def test_more_occurrences_weigh_more_but_saturate(encoder: SparseEncoder) -> None:
    def weight(text: str) -> float:
        vector = encoder.encode_document(text)
        return dict(zip(vector.indices, vector.values, strict=True))[term_index("robot")]

    filler = " ".join(f"filler{i}" for i in range(20))
    once, twice, many = (
        weight(f"robot {filler}"),
        weight(f"robot robot {filler}"),
        weight(f"{'robot ' * 50}{filler}"),
    )
    assert once < twice < many < encoder.k1 + 1
    # the same term frequency in a longer document weighs less
    assert weight(f"robot {filler} {filler}") < once


def test_empty_text_gives_an_empty_vector(encoder: SparseEncoder) -> None:
    assert encoder.encode_document("").indices == []
    assert encoder.encode_query("?? !!").indices == []


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError):
        SparseEncoder(b=1.5)
    with pytest.raises(ValueError):
        SparseEncoder(avg_doc_len=0)
