"""The evaluation set and command: enough questions, real documents, the project's own words."""

from __future__ import annotations

import re
from pathlib import Path

from eval.__main__ import DEFAULT_CORPORA, DEFAULT_QUESTIONS, load_questions, main


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


def test_the_evaluation_command_meets_the_recall_target(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    assert main(["--books", "book-b", "--quiet", "--min-recall", "0.9", "--json", str(out)]) == 0
    assert '"recall@5"' in out.read_text(encoding="utf-8")
