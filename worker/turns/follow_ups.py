"""Follow-up questions: "Why does it help?" names its subject only in the turn before.

Retrieval then searches with the previous question folded in. A question that stands on its own ("What is
URDF?" after a question about topics) is searched alone, so the earlier subject does not crowd its passages
out, and whether the book covers it is judged on its own words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from worker.turns.book_scope import content_terms

# Words that point back at something said before ("why does it help?", "these joints", "for that"), and
# openings that continue the previous question. "Its" and "their" are left out: in "how does a robot keep
# its balance?" they point inside the question.
_POINTS_BACK = re.compile(
    r"\b(it|it's|them|they|there|this|these|those|former|latter|above|previous|earlier|same|he|she|him)\b|"
    r"\bsuch\b(?! as\b)|\b(do|does|did|for|with|about|of|like|to|from|on|in|by|after|before)\s+that\b|\bthat\W*$|"
    r"\b(use|which|another|other|new|same)\s+ones?\b",
    re.I,
)
_CONTINUES = re.compile(r"^\s*(and|but|also|so|or|then|what about|how about|how so|why so|more|again)\b", re.I)


def looks_like_follow_up(question: str) -> bool:
    if _POINTS_BACK.search(question) or _CONTINUES.match(question):
        return True
    return not content_terms(question)  # "Why?", "Can you explain more?"


def retrieval_query(question: str, earlier_questions: Sequence[str], selected_text: str | None) -> str:
    """What retrieval searches for: the selection, the previous question when this one follows it up, and
    the question itself."""
    parts = [selected_text or ""]
    if earlier_questions and looks_like_follow_up(question):
        parts.append(earlier_questions[-1])
    parts.append(question)
    return "\n\n".join(p for p in parts if p)
