"""Follow-ups: the previous question is searched with one that points back at it, not with one that stands alone."""

from __future__ import annotations

import pytest

from worker.turns.follow_ups import looks_like_follow_up, retrieval_query


@pytest.mark.parametrize(
    "question",
    ["Why does it help?", "Show me a Python publisher for that.", "And how is it tested?", "What about Gazebo?"],
)
def test_questions_that_point_back_are_follow_ups(question: str) -> None:
    assert looks_like_follow_up(question)


@pytest.mark.parametrize("question", ["What is URDF?", "How does a humanoid robot keep its balance?"])
def test_questions_that_stand_alone_are_not(question: str) -> None:
    assert not looks_like_follow_up(question)


def test_the_retrieval_query_folds_in_the_previous_question_and_the_selection() -> None:
    earlier = ["What is a ROS 2 topic?", "What is URDF?"]
    assert retrieval_query("Why does it matter?", earlier, None) == "What is URDF?\n\nWhy does it matter?"
    assert retrieval_query("What is a capture point?", earlier, None) == "What is a capture point?"
    assert retrieval_query("Explain this", [], "The ZMP stays inside.") == "The ZMP stays inside.\n\nExplain this"
