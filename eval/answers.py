"""``make eval``'s checks of the answers themselves, offline and hybrid (the fake Cohere server):

* **declines**: the share of out-of-scope questions (``eval/out_of_scope.yaml``: unrelated topics,
  near-domain topics neither book treats, small talk) and of in-scope questions (``eval/questions.yaml``)
  that the tutor declines or answers as small talk, decided exactly as the worker decides
  (worker/turns/book_scope.py, shared/small_talk.py), on each book;
* **calibration**: on the book named by ``--calibrate-on`` (book-a), the highest offline coverage threshold
  that declines at most 3 % of its in-scope questions, and what that threshold does on the other book;
* **follow-ups**: recall@5 of the second question of two-turn conversations (``eval/follow_ups.yaml``),
  retrieved as the worker retrieves it (the previous question folded in), and without the fold;
* **key facts** (the sample book, ``eval/answer_facts.yaml``): the share of key facts that the offline answer
  contains, before (``eval/offline_answer_before.py``) and after, the share of answers whose first sentence
  holds the main fact, and the same for the hybrid path's answer (the fake's extractive chat).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eval import offline_answer_before
from shared.settings import Settings
from shared.small_talk import small_talk_kind
from worker.cohere.provider import ChatDocument, CohereProvider, TextPiece
from worker.knowledge.documents import Passage
from worker.knowledge.store import KnowledgeStore
from worker.knowledge.vocabulary import BookVocabulary, TermRarity
from worker.turns import offline_answer
from worker.turns.book_scope import coverage, offline_covers, passage_text, rerank_covers
from worker.turns.follow_ups import retrieval_query
from worker.turns.reader_language import ReaderLanguage
from worker.turns.system_prompt import system_prompt

HERE = Path(__file__).resolve().parent
OUT_OF_SCOPE = HERE / "out_of_scope.yaml"
FOLLOW_UPS = HERE / "follow_ups.yaml"
ANSWER_FACTS = HERE / "answer_facts.yaml"
MAX_IN_SCOPE_DECLINED = 0.03


@dataclass(frozen=True)
class FollowUp:
    book: str
    first: str
    then: str
    docs: tuple[str, ...]


@dataclass(frozen=True)
class FactQuestion:
    question: str
    facts: tuple[str, ...]


@dataclass
class Declines:
    """Per path ("offline", "hybrid"): how many questions of each set were declined."""

    asked: dict[str, int] = field(default_factory=dict)
    declined: dict[str, dict[str, int]] = field(default_factory=dict)
    coverage: dict[str, list[float]] = field(default_factory=dict)  # offline coverage, per set
    relevance: dict[str, list[float]] = field(default_factory=dict)  # hybrid: the best rerank score, per set

    def add(self, kind: str, path: str, declined: bool) -> None:
        self.declined.setdefault(path, {}).setdefault(kind, 0)
        self.declined[path][kind] += int(declined)

    def share(self, path: str, kinds: Sequence[str]) -> float:
        asked = sum(self.asked.get(k, 0) for k in kinds)
        return sum(self.declined.get(path, {}).get(k, 0) for k in kinds) / asked if asked else 0.0


def load_out_of_scope(path: Path = OUT_OF_SCOPE) -> dict[str, list[str]]:
    data: dict[str, list[str]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {kind: [str(q) for q in questions] for kind, questions in data.items()}


def load_follow_ups(path: Path = FOLLOW_UPS) -> list[FollowUp]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        FollowUp(book, str(item["first"]), str(item["then"]), tuple(item["docs"]))
        for book, items in data.items()
        for item in items
    ]


def load_answer_facts(path: Path = ANSWER_FACTS) -> list[FactQuestion]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [FactQuestion(str(item["question"]), tuple(str(f) for f in item["facts"])) for item in data]


async def declines(
    in_scope: Sequence[str],
    out_of_scope: dict[str, list[str]],
    sparse: KnowledgeStore,
    hybrid: KnowledgeStore,
    cohere: CohereProvider,
    settings: Settings,
) -> Declines:
    """Ask every question on both paths; declined = small talk, or not covered by the book."""
    rarity = await BookVocabulary(sparse).rarity()
    result = Declines()
    sets = {"in-scope": list(in_scope), **out_of_scope}
    for kind, questions in sets.items():
        result.asked[kind] = len(questions)
        for question in questions:
            talk = small_talk_kind(question) is not None
            found = await sparse.search(question, None, settings.retrieval_top_k)
            result.coverage.setdefault(kind, []).append(_best_coverage(question, found, rarity))
            covered = offline_covers(question, found, rarity, settings.offline_min_coverage)
            result.add(kind, "offline", talk or not covered)
            reranked = await _hybrid(question, question, hybrid, cohere, settings)
            best = 0.0 if talk or not reranked else reranked[0].score
            result.relevance.setdefault(kind, []).append(best)
            result.add(kind, "hybrid", talk or not rerank_covers(reranked, settings.rerank_min_relevance))
    return result


def _best_coverage(question: str, passages: Sequence[Passage], rarity: TermRarity) -> float:
    if small_talk_kind(question) is not None or not passages:
        return 0.0
    best = passages[0]
    return coverage(question, passage_text(best.title, best.heading, best.text), rarity)


async def _hybrid(
    query: str, rerank_query: str, store: KnowledgeStore, cohere: CohereProvider, settings: Settings
) -> list[Passage]:
    vector = await cohere.embed_query(query)
    pool = await store.search(query, vector, settings.retrieval_candidates)
    return await cohere.rerank(rerank_query, pool, settings.retrieval_top_k)


def calibrate(in_scope: Sequence[float]) -> float:
    """The highest threshold that declines at most 3 % of the in-scope questions (ties kept answered)."""
    allowed = int(MAX_IN_SCOPE_DECLINED * len(in_scope))
    ordered = sorted(in_scope)
    threshold = ordered[allowed] if allowed < len(ordered) else 1.0
    return round(threshold - 0.005, 2)  # just below the first in-scope value that must stay answered


def declined_at(values: Sequence[float], threshold: float) -> float:
    return sum(1 for v in values if v < threshold) / len(values) if values else 0.0


async def follow_up_recall(
    conversations: Sequence[FollowUp],
    names: dict[str, str],
    sparse: KnowledgeStore,
    hybrid: KnowledgeStore,
    cohere: CohereProvider,
    settings: Settings,
) -> dict[str, float]:
    """recall@5 of the follow-ups, offline and hybrid, with the previous question folded in and without."""
    hits = {"offline": 0, "hybrid": 0, "offline, alone": 0, "hybrid, alone": 0}
    k = settings.retrieval_top_k
    for talk in conversations:
        docs = {names.get(d, d) for d in talk.docs}
        folded = retrieval_query(talk.then, [talk.first], None)
        for label, query in (("offline", folded), ("offline, alone", talk.then)):
            found = await sparse.search(query, None, k)
            hits[label] += any(p.doc in docs for p in found)
        for label, query in (("hybrid", folded), ("hybrid, alone", talk.then)):
            found = await _hybrid(query, query, hybrid, cohere, settings)
            hits[label] += any(p.doc in docs for p in found)
    return {label: count / len(conversations) for label, count in hits.items()} if conversations else {}


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[*_`]{1,2}(?=\w)|(?<=\w)[*_`]{1,2}", "", text).casefold().split())


def facts_present(answer: str, facts: Sequence[str]) -> list[bool]:
    flat = " ".join(answer.casefold().split())  # code fences keep their backticks
    plain = _normalised(answer)
    return [f.casefold() in flat or _normalised(f) in plain for f in facts]


def first_sentence(answer: str) -> str:
    prose = answer.split("```", 1)[0]
    return re.split(r"(?<=[.!?])\s+", prose.strip(), maxsplit=1)[0]


@dataclass
class FactScores:
    facts: int = 0
    present: dict[str, int] = field(default_factory=dict)
    main_first: dict[str, int] = field(default_factory=dict)
    questions: int = 0

    def add(self, label: str, answer: str, question: FactQuestion) -> None:
        found = facts_present(answer, question.facts)
        self.present[label] = self.present.get(label, 0) + sum(found)
        main = facts_present(first_sentence(answer), question.facts[:1])[0]
        self.main_first[label] = self.main_first.get(label, 0) + int(main)

    def report(self) -> dict[str, dict[str, float]]:
        return {
            label: {
                "key facts present": self.present[label] / self.facts,
                "main fact in the first sentence": self.main_first[label] / self.questions,
            }
            for label in self.present
        }


async def key_facts(
    questions: Sequence[FactQuestion],
    sparse: KnowledgeStore,
    hybrid: KnowledgeStore,
    cohere: CohereProvider,
    settings: Settings,
) -> tuple[dict[str, dict[str, float]], list[tuple[str, str]]]:
    """Key facts in the answers: offline before and after, and hybrid; with the offline answers."""
    scores = FactScores(facts=sum(len(q.facts) for q in questions), questions=len(questions))
    answers: list[tuple[str, str]] = []
    english = ReaderLanguage(None)
    for question in questions:
        found = await sparse.search(question.question, None, settings.retrieval_top_k)
        before = [offline_answer_before.OfflinePassage(f"s{i}", p.text) for i, p in enumerate(found)]
        after = [
            offline_answer.OfflinePassage(f"s{i}", p.text, f"{p.title} > {p.heading}") for i, p in enumerate(found)
        ]
        old = _text(offline_answer_before.compose(question.question, before))
        new = _text(offline_answer.compose(question.question, after))
        scores.add("offline, before", old, question)
        scores.add("offline", new, question)
        answers.append((question.question, new))
        reranked = await _hybrid(question.question, question.question, hybrid, cohere, settings)
        documents = [ChatDocument(f"s{i}", f"{p.title} — {p.heading}", p.text, p.url) for i, p in enumerate(reranked)]
        system = system_prompt(english, None, selection=False)
        pieces = [piece async for piece in cohere.stream_answer(system, [], question.question, documents)]
        scores.add("hybrid", _text(pieces), question)
    return scores.report(), answers


def _text(pieces: Any) -> str:
    return "".join(p.text for p in pieces if isinstance(p, TextPiece))
