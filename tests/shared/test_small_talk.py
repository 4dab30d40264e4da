"""Small talk: a greeting, thanks or goodbye on its own gets a reply; a question that starts with one does not."""

from __future__ import annotations

import pytest

from shared.small_talk import small_talk_kind


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("hi", "greeting"),
        ("Hello there!", "greeting"),
        ("good morning", "greeting"),
        ("How are you doing today?", "greeting"),
        ("السلام علیکم", "greeting"),
        ("thanks!", "thanks"),
        ("Thank you so much", "thanks"),
        ("ok thanks, that helped", "thanks"),
        ("شکریہ", "thanks"),
        ("bye", "goodbye"),
        ("who are you?", "about_me"),
    ],
)
def test_small_talk_is_recognised(question: str, kind: str) -> None:
    assert small_talk_kind(question) == kind


@pytest.mark.parametrize(
    "question",
    ["Hi, what is a ROS 2 topic?", "Thanks, and how does a robot keep its balance?", "What is it?", "this", ""],
)
def test_questions_are_not_small_talk(question: str) -> None:
    assert small_talk_kind(question) is None
