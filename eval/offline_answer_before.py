"""The offline answer as it was before the answers were made to read well (worker/turns/offline_answer.py
now): kept only so that ``make eval`` can measure the change, key facts before and after."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from worker.cohere.provider import CitationPiece, TextPiece
from worker.knowledge.sparse import SparseEncoder

# The same stemmed terms retrieval uses, so "robots" in a question matches "robot" in the book.
tokenize = SparseEncoder().terms

NOTHING_FOUND = "I could not find anything about that in the book. Try asking with the book's own terms."

_CODE_FENCE = re.compile(r"```.*?(```|$)", re.S)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKUP = re.compile(r"(\*\*|__|`|^#+\s*|^\s*[-*+]\s+|^\s*\d+\.\s+|^>\s*|:::\w*)", re.M)
# A quoted sentence must make sense on its own: one that leans on the sentence before it ("It does
# this by...") or points around the book ("this chapter") reads badly out of context.
_LEANS_ON_CONTEXT = re.compile(
    r"^(it|this|that|these|those|they|them|such|here|there|also|then|so|but|and)\b|\b(this|next|previous) "
    r"(chapter|section|module)\b|\b(below|above)\b|\b(them|it|this|these|those)[.!?]$",
    re.I,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class OfflinePassage:
    source_id: str
    text: str


@dataclass(frozen=True)
class _Candidate:
    score: float
    rank: int
    position: int
    source_id: str
    sentence: str


def plain_sentences(markdown: str) -> list[str]:
    """Prose sentences of a Markdown passage: code, tables and markup removed."""
    text = _CODE_FENCE.sub(" ", markdown)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("|")]
    text = _MARKUP.sub("", _LINK.sub(r"\1", "\n".join(lines)))
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        flat = " ".join(block.split())
        sentences.extend(s.strip() for s in _SENTENCE_END.split(flat) if s.strip())
    return sentences


def _candidates(question: str, passages: Sequence[OfflinePassage]) -> list[_Candidate]:
    wanted = set(tokenize(question))
    found: list[_Candidate] = []
    for rank, passage in enumerate(passages):
        for position, sentence in enumerate(plain_sentences(passage.text)):
            if not 25 <= len(sentence) <= 500 or sentence[-1] not in ".!?":
                continue
            terms = set(tokenize(sentence))
            overlap = len(wanted & terms)
            # Overlap with the question, normalised so long sentences do not win by length alone, and a
            # small preference for passages retrieval ranked higher.
            score = overlap / math.sqrt(len(terms) + 1) + 0.2 / (rank + 1)
            if overlap:
                found.append(_Candidate(score, rank, position, passage.source_id, sentence))
    return found


def compose(
    question: str, passages: Sequence[OfflinePassage], max_sentences: int = 3
) -> Iterator[TextPiece | CitationPiece]:
    """Yield the answer word by word, with a citation after each quoted sentence."""
    candidates = _candidates(question, passages)
    standalone = [c for c in candidates if not _LEANS_ON_CONTEXT.search(c.sentence)]
    chosen = sorted(standalone or candidates, key=lambda c: c.score, reverse=True)
    picked: list[_Candidate] = []
    for candidate in chosen:
        if all(candidate.sentence != p.sentence for p in picked):
            picked.append(candidate)
        if len(picked) == max_sentences:
            break
    if not picked and passages:
        # Nothing shares a word with the question: quote the best passage's opening instead.
        first = next((s for s in plain_sentences(passages[0].text) if len(s) >= 25), None)
        if first is not None:
            picked = [_Candidate(0.0, 0, 0, passages[0].source_id, first)]
    if not picked:
        yield from _words(NOTHING_FOUND)
        return
    picked.sort(key=lambda c: (c.rank, c.position))  # read in the book's order
    offset = 0
    for index, candidate in enumerate(picked):
        sentence = candidate.sentence if index == 0 else " " + candidate.sentence
        yield from _words(sentence)
        start = offset + (0 if index == 0 else 1)
        offset += len(sentence)
        yield CitationPiece(start, offset, candidate.sentence, [candidate.source_id])


def _words(text: str) -> Iterator[TextPiece]:
    for match in re.finditer(r"\s*\S+", text):
        yield TextPiece(match.group(0))
