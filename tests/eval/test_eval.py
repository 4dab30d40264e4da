"""The evaluation set and command: enough questions, real documents, the project's own words."""

from __future__ import annotations

import json
import re
from pathlib import Path

from eval.__main__ import DEFAULT_CORPORA, DEFAULT_QUESTIONS, load_questions, main
from eval.answers import load_answer_facts, load_follow_ups, load_out_of_scope


def test_at_least_40_questions_each_naming_documents_that_exist() -> None:
    questions = load_questions(DEFAULT_QUESTIONS)
    assert len(questions) >= 40
    assert {q.book for q in questions} == {"book-a", "book-b"}
    assert len({q.text for q in questions}) == len(questions)
    for question in questions:
        assert question.docs
        for doc in question.docs:
            assert (DEFAULT_CORPORA / question.book / doc).is_file(), doc


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_no_question_is_copied_from_the_books() -> None:
    books = {
        book: " ".join(_words(p.read_text(encoding="utf-8")) for p in (DEFAULT_CORPORA / book).rglob("*.md"))
        for book in ("book-a", "book-b")
    }
    for question in load_questions(DEFAULT_QUESTIONS):
        words = _words(question.text).split()
        # no run of 8 consecutive words of a question appears in its book
        for start in range(len(words) - 7):
            assert " ".join(words[start : start + 8]) not in books[question.book], question.text


def test_the_evaluation_command_meets_its_targets(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    assert main(["--books", "book-b", "--quiet", "--min-recall", "0.9", "--json", str(out)]) == 0
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["all"]["sparse"]["recall@5"] >= 0.9
    offline = figures["declines"]["book-b"]["offline"]
    assert offline["out-of-scope"] >= 0.9 and offline["in-scope"] <= 0.03, offline
    assert figures["follow_ups"]["book-b"]["offline"] >= 0.9
    facts = figures["key_facts"]
    assert facts["offline"]["key facts present"] > facts["offline, before"]["key facts present"]
    assert (
        facts["offline"]["main fact in the first sentence"]
        > facts["offline, before"]["main fact in the first sentence"]
    )


def test_the_out_of_scope_and_follow_up_sets() -> None:
    out_of_scope = load_out_of_scope()
    assert set(out_of_scope) == {"unrelated", "near-domain", "small-talk"}
    assert sum(len(questions) for questions in out_of_scope.values()) >= 40
    conversations = load_follow_ups()
    assert {c.book for c in conversations} == {"book-a", "book-b"} and len(conversations) >= 20
    for talk in conversations:
        assert all((DEFAULT_CORPORA / talk.book / doc).is_file() for doc in talk.docs), talk
    assert len(load_answer_facts()) >= 30
