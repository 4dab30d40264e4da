"""Follow-up questions: "Why does it help?" names its subject only in the turn before.

Retrieval then searches with the previous question folded in. A question that stands on its own ("What is
URDF?" after a question about topics) is searched alone, so the earlier subject does not crowd its passages
out, and whether the book covers it is judged on its own words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from worker.turns.book_scope import content_terms

# Words that point back at something said before, and openings that continue the previous question.
_POINTS_BACK = re.compile(
    r"\b(it|its|it's|this|that|these|those|they|them|their|theirs|there|he|she|him|her|such|same|former|"
    r"latter|above|previous|earlier|one|ones)\b",
    re.I,
)
_CONTINUES = re.compile(r"^\s*(and|but|also|so|or|then|what about|how about|why|how so|more|again|example)\b", re.I)


def looks_like_follow_up(question: str) -> bool:
    return bool(_POINTS_BACK.search(question) or _CONTINUES.match(question)) or len(content_terms(question)) <= 1


def retrieval_query(question: str, earlier_questions: Sequence[str], selected_text: str | None) -> str:
    """What retrieval searches for: the selection, the previous question when this one follows it up, and
    the question itself."""
    parts = [selected_text or ""]
    if earlier_questions and looks_like_follow_up(question):
        parts.append(earlier_questions[-1])
    parts.append(question)
    return "\n\n".join(p for p in parts if p)
