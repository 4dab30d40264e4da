"""A BM25-style sparse encoder: keyword retrieval that needs no model and no network.

Text becomes lower-case word and number tokens; common English function words are dropped and the rest are
reduced to their Snowball (Porter 2) stems, so "robots" and "robot" meet. Each stem is hashed to a 32-bit
index with CRC-32, which is the same in every process and on every machine (Python's ``hash()`` is not).

Documents carry BM25's saturated term frequency, ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``;
queries carry 1.0 per distinct term. The IDF factor is computed by Qdrant at query time from the collection
itself (``Modifier.IDF`` on the sparse vector), so the index never has to be rebuilt to keep IDF current.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter
from typing import Any

import snowballstemmer
from qdrant_client import models

K1 = 1.2
B = 0.75
AVG_DOC_LEN = 100.0  # tokens left after stop words in a chunk: 80-120 on average in the books we index
MAX_TOKEN_CHARS = 40  # longer "words" are hashes, base64 or minified code: not worth an index entry

MAX_CACHED_STEMS = 200_000

_TOKEN = re.compile(r"[^\W_]+")

_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


class SparseEncoder:
    """Stateless apart from a stem cache; one instance may be shared by threads."""

    def __init__(self, *, k1: float = K1, b: float = B, avg_doc_len: float = AVG_DOC_LEN) -> None:
        if k1 < 0 or not 0 <= b <= 1 or avg_doc_len <= 0:
            raise ValueError("k1 must be >= 0, b within [0, 1] and avg_doc_len > 0")
        self.k1 = k1
        self.b = b
        self.avg_doc_len = avg_doc_len
        self._local = threading.local()  # the Snowball stemmer object is not safe to share across threads
        self._stems: dict[str, str] = {}

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = snowballstemmer.stemmer("english")
            self._local.stemmer = stemmer
        return stemmer

    def terms(self, text: str) -> list[str]:
        """Stems of the text's words in order, stop words removed."""
        words = [
            word for word in _TOKEN.findall(text.lower()) if word not in STOP_WORDS and len(word) <= MAX_TOKEN_CHARS
        ]
        stems = self._stems
        unknown = [word for word in set(words) if word not in stems]
        if not unknown:
            return [stems[word] for word in words]
        # another thread may clear the shared cache meanwhile: answer from this call's own stems
        found = {word: str(stem) for word, stem in zip(unknown, self._stemmer().stemWords(unknown), strict=True)}
        if len(stems) > MAX_CACHED_STEMS:
            stems.clear()  # questions bring new words forever; keep the cache bounded
        stems.update(found)
        return [found[word] if word in found else stems.get(word) or self._stem(word) for word in words]

    def _stem(self, word: str) -> str:
        return str(self._stemmer().stemWord(word))

    def encode_document(self, text: str) -> models.SparseVector:
        terms = self.terms(text)
        counts: Counter[int] = Counter()
        for term, count in Counter(terms).items():  # hash each distinct stem once, not each occurrence
            counts[term_index(term)] += count
        norm = self.k1 * (1 - self.b + self.b * len(terms) / self.avg_doc_len)
        indices = sorted(counts)
        values = [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]
        return models.SparseVector(indices=indices, values=values)

    def encode_query(self, text: str) -> models.SparseVector:
        indices = sorted({term_index(term) for term in self.terms(text)})
        return models.SparseVector(indices=indices, values=[1.0] * len(indices))


def term_index(term: str) -> int:
    """A term's sparse index: CRC-32 of its UTF-8 bytes (0 … 2**32 - 1, stable everywhere)."""
    return zlib.crc32(term.encode("utf-8"))
