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


BALANCE = OfflinePassage(
    "s1",
    "## Balance strategies\n\nJoint torque limits and foot size put hard bounds on the ankle strategy. A controller "
    "that ignores them will command a ZMP the foot cannot produce, and the robot will tip.\n\n"
    "Modern humanoids often solve balance as an optimisation problem every control cycle. A whole-body controller "
    "formulates a quadratic program that keeps each foot's centre of pressure inside its sole.",
)
ROS = OfflinePassage(
    "s1",
    "All running ROS 2 participants together form the ROS graph. Discovery is automatic.\n\n"
    "The Robot Operating System 2 (ROS 2) is not an operating system in the usual sense. It is a middleware and a "
    "set of libraries and tools that let many small programs cooperate to control a robot.",
)
CODE = OfflinePassage(
    "s2",
    "## A publisher in rclpy\n\nThe node below publishes velocity commands on /cmd_vel. It stops when anything is "
    "close.\n\n```python\nimport rclpy\n\nnode.create_publisher(Twist, '/cmd_vel', 10)\n```\n\n"
    "create_publisher takes the message type, the topic name and a queue depth.",
    "Nodes and Topics > A publisher in rclpy",
)


def test_a_what_is_question_opens_with_the_defining_sentence() -> None:
    answer, citations = run("What is ROS 2?", [ROS])
    assert answer.startswith("The Robot Operating System 2 (ROS 2) is not"), answer
    # what follows the opening comes in the book's order, and its "It" has its referent right before it
    assert "usual sense. It is a middleware" in answer
    assert len(citations) >= 2


def test_a_sentence_whose_referent_is_absent_is_left_out() -> None:
    answer, _ = run("How does a humanoid keep its balance?", [BALANCE])
    assert "ignores them" not in answer, answer
    assert answer.startswith("Modern humanoids often solve balance")


def test_nothing_is_said_twice_and_the_length_stays_within_two_to_five_sentences() -> None:
    duplicate = OfflinePassage("s2", ROS.text)  # chunks overlap: the same sentences come in two passages
    _, citations = run("What is ROS 2?", [ROS, duplicate, BALANCE])
    sentences = [c.text for c in citations]
    assert len(sentences) == len(set(sentences)) and 2 <= len(sentences) <= 5, sentences


def test_a_question_asking_for_code_gets_the_fenced_block_cited() -> None:
    answer, citations = run("Show me a Python publisher", [ROS, CODE])
    fence = "```python\nimport rclpy\n\nnode.create_publisher(Twist, '/cmd_vel', 10)\n```"
    assert fence in answer
    assert answer.startswith("The node below publishes velocity commands"), answer
    cited = [c for c in citations if c.text == fence]
    assert cited and answer[cited[0].start : cited[0].end] == fence and cited[0].source_ids == ["s2"]


def test_code_is_not_quoted_unless_asked_for() -> None:
    answer, _ = run("What does create_publisher take?", [CODE])
    assert "```" not in answer and "queue depth" in answer


def test_the_reader_language_note_comes_first_uncited() -> None:
    note = "یہ جواب کتاب کے انگریزی متن سے لیا گیا ہے۔"
    text, citations = "", []
    for piece in compose("What is ROS 2?", [ROS], note=note):
        if isinstance(piece, TextPiece):
            text += piece.text
        else:
            citations.append(piece)
    assert text.startswith(note + "\n\nThe Robot Operating System 2")
    assert all(text[c.start : c.end] == c.text for c in citations) and all(c.start > len(note) for c in citations)
