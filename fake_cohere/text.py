"""Word handling shared by the fake's embed, rerank and chat: tokens, light stemming, sentences, overlap."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# (suffix, replacement), longest first; "es" and "s" have extra conditions in ``stem``.
_RULES = (
    ("ational", "ate"), ("ization", "ize"), ("ations", "ate"), ("ation", "ate"), ("ments", ""), ("ment", ""),
    ("ness", ""), ("sses", "ss"), ("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("ly", ""), ("es", ""),
    ("s", ""),
)  # fmt: skip

_STOP_WORDS = """
    a an and are as at be been but by can could did do does for from had has have how i if in into is it
    its me my of on or our so than that the their them then there these they this those to too was we were
    what when where which who whom why will with would you your about also any each more most other some
    such only own same very just not no nor all both few
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Strip one common English suffix: ``robots`` -> ``robot``, ``walking`` -> ``walk``."""
    for suffix, replacement in _RULES:
        if not word.endswith(suffix):
            continue
        base = word[: -len(suffix)]
        if len(base) < 3:
            continue
        if suffix == "es" and not base.endswith(("s", "x", "z", "ch", "sh")):
            continue  # "images" is "image" + "s"
        if suffix == "s" and base.endswith(("s", "u", "i")):
            break  # "class", "status", "analysis"
        word = base + replacement
        if suffix in ("ing", "ed") and len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeiouls":
            word = word[:-1]  # running -> runn -> run
        break
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]  # compute / computing / computed all become "comput"
    return word


def words(text: str) -> list[str]:
    """Lower-cased word tokens with stop words removed and each stemmed."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


@lru_cache(maxsize=8192)
def word_set(text: str) -> frozenset[str]:
    """Cached: rerank and chat see the same book passages call after call (tokenizing them again was the
    fake's largest cost under bench/ load, CPU that the stack under test then lacked)."""
    return frozenset(words(text))


def count_tokens(text: str) -> int:
    """A rough token count for usage numbers: every word and punctuation mark."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def sentences(text: str) -> list[str]:
    """The text's sentences (split after ``.``, ``!`` or ``?``), whitespace-collapsed, empty ones dropped."""
    parts = _SENTENCE_END.split(" ".join(text.split()))
    return [part for part in (p.strip() for p in parts) if part]


def overlap(query: frozenset[str], candidate: frozenset[str]) -> float:
    """How well ``candidate`` covers ``query``, in [0, 1]: mostly coverage, a little Jaccard similarity."""
    if not query or not candidate:
        return 0.0
    shared = len(query & candidate)
    if shared == 0:
        return 0.0
    coverage = shared / len(query)
    jaccard = shared / len(query | candidate)
    return round(0.8 * coverage + 0.2 * jaccard, 6)


def relevance(query: frozenset[str], documents: Sequence[frozenset[str]]) -> list[float]:
    """Rerank's relevance of each document to the query, in [0, 1], shaped like a real reranker's: the share
    of the query's words the document holds, each word weighted by its rarity among the documents asked
    about (a word none of them has weighs most). A document that shares only the words every candidate
    shares ("robot" in a robotics book) scores low, so a question the documents do not answer does too."""
    if not query:
        return [0.0] * len(documents)
    count = len(documents)
    frequency = Counter(word for document in documents for word in query & document)
    weight = {word: math.log((count + 1) / (frequency[word] + 0.5)) for word in query}
    total = sum(weight.values())
    return [round(sum(weight[w] for w in query & document) / total, 6) for document in documents]
