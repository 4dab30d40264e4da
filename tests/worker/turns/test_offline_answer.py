"""The offline answer: the book's own sentences, each cited, streamed word by word."""

from __future__ import annotations

from worker.cohere.provider import CitationPiece, TextPiece
from worker.turns.offline_answer import NOTHING_FOUND, OfflinePassage, compose, plain_sentences


def run(question: str, passages: list[OfflinePassage]) -> tuple[str, list[CitationPiece]]:
    text, citations = "", []
    for piece in compose(question, passages):
        if isinstance(piece, TextPiece):
            text += piece.text
        else:
            citations.append(piece)
    return text, citations


def test_sentences_are_quoted_and_cited_exactly() -> None:
    passages = [
        OfflinePassage("s1", "# Topics\n\nA **topic** is a named bus. Nodes publish messages to a topic.\n"),
        OfflinePassage("s2", "Services answer requests. A topic carries a stream of messages between nodes."),
    ]
    answer, citations = run("What is a topic?", passages)
    assert citations and answer
    for citation in citations:
        assert answer[citation.start : citation.end] == citation.text
        assert citation.source_ids[0] in {"s1", "s2"}
    assert "**" not in answer and "#" not in answer, "markup is not quoted"


def test_sentences_that_lean_on_context_give_way() -> None:
    passages = [
        OfflinePassage(
            "s1", "This chapter explains balance of humanoid robots. Balance keeps a humanoid robot upright."
        )
    ]
    answer, _ = run("How does a humanoid robot keep balance?", passages)
    assert answer.startswith("Balance keeps"), answer


def test_code_and_tables_are_not_quoted() -> None:
    markdown = (
        "Intro sentence about robots here.\n\n```python\nrobot.move()  # robots move.\n```\n\n| a | b |\n|---|---|\n"
    )
    assert plain_sentences(markdown) == ["Intro sentence about robots here."]


def test_nothing_found_is_said_plainly() -> None:
    answer, citations = run("What is a topic?", [])
    assert answer == NOTHING_FOUND and citations == []
