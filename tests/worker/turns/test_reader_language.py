"""The reader's language: the ask's tag first, then the question's script; the fixed lines in a few languages."""

from __future__ import annotations

import pytest

from worker.turns.reader_language import LINES, detect_script_language, reader_language


@pytest.mark.parametrize(
    ("question", "tag"),
    [
        ("ROS 2 میں نوڈ کیا ہوتا ہے؟", "ur"),  # Urdu-only letters beside the Latin "ROS 2"
        ("ما هو ROS 2؟", "ar"),
        ("ROS 2 क्या है?", "hi"),
        ("什么是 ROS 2？", "zh"),
        ("ROS 2とは何ですか", "ja"),
        ("Что такое ROS 2?", "ru"),
        ("What is ROS 2?", None),
        ("¿Qué es ROS 2?", None),  # Latin script: the model reads the language itself
        ("What does 你好 mean for a robot?", None),  # one foreign word in a Latin-script question
    ],
)
def test_the_script_names_the_language(question: str, tag: str | None) -> None:
    assert detect_script_language(question) == tag


def test_the_asked_language_overrides_the_script() -> None:
    assert reader_language("ROS 2 کیا ہے؟", "fr").tag == "fr"
    assert reader_language("What is a topic?", "ur-PK").english_note() == LINES["ur"]["english_only"]


def test_the_english_note_only_for_known_other_languages() -> None:
    assert reader_language("What is a topic?", None).english_note() is None
    assert reader_language("What is a topic?", "en-GB").english_note() is None
    assert reader_language("What is a topic?", "sw").english_note() is None  # no line written for Swahili
    assert reader_language("ROS 2 کیا ہے؟", None).english_note() == LINES["ur"]["english_only"]


def test_fixed_replies_fall_back_to_english() -> None:
    assert reader_language("hi", "sw").line("greeting") == LINES["en"]["greeting"]
    assert reader_language("سلام", "ur").line("greeting") == LINES["ur"]["greeting"]
    assert reader_language("x", "ur").name == "Urdu"
    every = {"not_in_book", "greeting", "thanks", "goodbye", "about_me"}
    for language, lines in LINES.items():
        assert every <= set(lines), language
