"""What to ask next: questions from the headings next to the sections an answer drew on."""

from __future__ import annotations

import pytest

from worker.turns.suggestions import as_question, follow_up_questions

OUTLINES = {
    "02-ros2/01-nodes-and-topics.md": [
        ("Nodes and Topics in ROS 2", "/docs/a"),
        ("Nodes and Topics in ROS 2 > The ROS 2 graph", "/docs/a#graph"),
        ("Nodes and Topics in ROS 2 > What is a topic?", "/docs/a#topic"),
        ("Nodes and Topics in ROS 2 > What is a topic? > Quality of service", "/docs/a#qos"),
        ("Nodes and Topics in ROS 2 > Summary", "/docs/a#summary"),
    ],
    "02-ros2/02-urdf-and-tf.md": [
        ("Describing a Robot > What does a URDF describe?", "/docs/b#urdf"),
        ("Describing a Robot > TF: where is everything right now?", "/docs/b#tf"),
    ],
}


async def outline(doc: str) -> list[tuple[str, str]]:
    return OUTLINES[doc]


@pytest.mark.parametrize(
    ("heading", "question"),
    [
        ("Quality of service", "What about Quality of service?"),
        ("What is a topic?", "What is a topic?"),
        ("How humanoids keep their balance", "How humanoids keep their balance?"),
        ("Summary", None),
        ("Step 2: [Brief description of second step]", None),
        ("A heading far too long to make a short question out of it", None),
    ],
)
def test_headings_become_short_questions(heading: str, question: str | None) -> None:
    assert as_question(heading) == question


async def test_neighbours_first_then_the_other_sections_drawn_on() -> None:
    drew_on = [
        ("02-ros2/01-nodes-and-topics.md", "Nodes and Topics in ROS 2 > What is a topic?"),
        ("02-ros2/02-urdf-and-tf.md", "Describing a Robot > What does a URDF describe?"),
    ]
    suggestions = await follow_up_questions("What is a ROS 2 topic?", drew_on, outline)
    assert suggestions == [
        "What about Quality of service?",  # the next section
        "What about The ROS 2 graph?",  # the one before
        "TF: where is everything right now?",  # next to the other section drawn on
    ]


async def test_what_the_question_asked_about_is_not_suggested() -> None:
    drew_on = [("02-ros2/01-nodes-and-topics.md", "Nodes and Topics in ROS 2 > The ROS 2 graph")]
    suggestions = await follow_up_questions("What is a topic?", drew_on, outline)
    assert "What is a topic?" not in suggestions and len(suggestions) <= 3
