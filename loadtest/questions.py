"""Question files: one question per line; blank lines and lines starting with ``#`` are skipped."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_QUESTIONS = "questions.txt"  # shipped with the package: questions about the sample book


def parse_questions(text: str) -> list[str]:
    questions = []
    for line in text.splitlines():
        question = line.strip()
        if question and not question.startswith("#"):
            questions.append(question)
    return questions


def load_questions(path: Path | None = None) -> list[str]:
    """The questions of ``path``, or the packaged default set. Raises OSError/UnicodeDecodeError as
    reading does, and ValueError when the file holds no question."""
    if path is None:
        text = resources.files("loadtest").joinpath(DEFAULT_QUESTIONS).read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    questions = parse_questions(text)
    if not questions:
        raise ValueError(f"{path or DEFAULT_QUESTIONS} holds no question (one per line)")
    return questions
