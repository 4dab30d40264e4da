"""Deterministic, meaningful embeddings: a hashed bag of stemmed words and their character trigrams.

Every word stem adds weight 1 to one signed coordinate and each of its trigrams a little more to others,
so texts that share words (or word pieces) point the same way; the vector is L2-normalised, so a dot
product is the cosine similarity. The same text gives the same vector in every process (no salted hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .text import words

WORD_WEIGHT = 1.0
TRIGRAM_WEIGHT = 0.15
_EMPTY = "\x00empty"  # the feature of a text without any word


def _hash(feature: str) -> int:
    return int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")


@lru_cache(maxsize=131072)
def _features(stem: str) -> tuple[np.ndarray, np.ndarray]:
    """The word's features as (64-bit hashes >> 1, signed weights); independent of the dimension."""
    padded = f"#{stem}#"
    names = [f"w:{stem}"] + [f"t:{padded[i : i + 3]}" for i in range(len(padded) - 2)]
    hashes = [_hash(name) for name in names]
    weights = [WORD_WEIGHT] + [TRIGRAM_WEIGHT] * (len(names) - 1)
    signs = [1.0 if h & 1 else -1.0 for h in hashes]
    return (
        np.array([h >> 1 for h in hashes], dtype=np.uint64),
        np.array([w * s for w, s in zip(weights, signs, strict=True)], dtype=np.float64),
    )


def embed_texts(texts: Sequence[str], dimension: int) -> np.ndarray:
    """A ``(len(texts), dimension)`` float32 matrix of unit rows."""
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    counts: list[int] = []
    hashes: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for text in texts:
        count = 0
        for stem in words(text) or [_EMPTY]:
            feature_hashes, feature_weights = _features(stem)
            hashes.append(feature_hashes)
            weights.append(feature_weights)
            count += len(feature_hashes)
        counts.append(count)
    rows = np.repeat(np.arange(len(texts), dtype=np.uint64), counts)
    flat = rows * np.uint64(dimension) + np.concatenate(hashes) % np.uint64(dimension)
    matrix = np.bincount(flat.astype(np.int64), weights=np.concatenate(weights), minlength=len(texts) * dimension)
    matrix = matrix.reshape(len(texts), dimension)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = (matrix / norms).astype(np.float32)
    return unit


def quantize(matrix: np.ndarray, kind: str) -> np.ndarray:
    """The ``int8`` / ``uint8`` forms of unit embeddings, as Cohere returns them."""
    scaled = np.clip(np.rint(matrix * 127.0), -128, 127).astype(np.int16)
    return scaled if kind == "int8" else scaled + 128
