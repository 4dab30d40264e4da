"""Whether the book covers a question: the measure each path decides on.

Offline there is no relevance model, and BM25's raw score grows with the question's length, so it says little
on its own. What does: how much of the question's own content the best passage contains. ``coverage`` is
the share of the question's content terms (stems, stop words and question fillers left out) found in the
best passage, each term weighted by its IDF in the book, so that "robot" weighs little and a word the book
never uses weighs most. A question about the weather in Paris covers nothing of a robotics book; one about
Isaac Sim covers nearly all of it. The threshold (``OFFLINE_MIN_COVERAGE``) was chosen on one book and checked on the
other by ``make eval``. On the Cohere path, the rerank relevance score of the best passage is the measure
(``RERANK_MIN_RELEVANCE``).
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.knowledge.documents import Passage
from worker.knowledge.sparse import SparseEncoder
from worker.knowledge.vocabulary import TermRarity

_encoder = SparseEncoder()

# Words of how people ask rather than of what they ask about ("explain", "show me an example"); as stems.
_FILLER_WORDS = """
    explain explanation tell describe show give list mean meaning example examples please help need want
    know learn understand use used using work works way ways difference different differ compare thing
    things something anything book chapter section page question answer kind type types good best better
    main important get make do does done can could would should also really simple simply basic detail
    details overview idea ideas happen happens possible pros cons step steps say says said write written
    look like just one two much many lot lots
"""
FILLER_TERMS = frozenset(_encoder.terms(_FILLER_WORDS))


def content_terms(text: str) -> set[str]:
    """The stems a question is about: stop words and asking words left out."""
    return {term for term in _encoder.terms(text) if term not in FILLER_TERMS}


def coverage(question: str, passage: str, rarity: TermRarity) -> float:
    """Share of the question's content found in ``passage`` (the best one), each term weighted by its
    rarity in the book, in [0, 1]. A question without content terms ("why?") has nothing missing: 1.0."""
    wanted = content_terms(question)
    if not wanted:
        return 1.0
    found = wanted & set(_encoder.terms(passage))
    return sum(rarity.idf(t) for t in found) / sum(rarity.idf(t) for t in wanted)


def passage_text(title: str, heading: str, text: str) -> str:
    """What a passage offers to cover a question: its words and those of its title and headings."""
    return f"{title}\n{heading}\n{text}"


def offline_covers(question: str, passages: Sequence[Passage], rarity: TermRarity, min_coverage: float) -> bool:
    """Offline: the best passage holds at least ``min_coverage`` of the question's content."""
    if not passages:
        return False
    best = passages[0]
    return coverage(question, passage_text(best.title, best.heading, best.text), rarity) >= min_coverage


def rerank_covers(passages: Sequence[Passage], min_relevance: float) -> bool:
    """Cohere path: the reranked best passage is relevant enough (its score is rerank's relevance)."""
    return bool(passages) and passages[0].score >= min_relevance
