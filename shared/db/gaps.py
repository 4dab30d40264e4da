"""What readers look for that the book lacks: the questions the tutor declined ("the book does not cover
that") and the answers readers rated down, grouped by similar wording, with counts and the nearest chapter.

Declined turns are those whose ``done`` said ``grounded: false``, less small talk (shared/small_talk.py).
Wordings are grouped greedily: a question joins the first group whose first question shares at least half of
their content words (Snowball stems, stop words left out). The nearest chapter of a group is the chapter its
turns' sources named most often (for a declined turn, its first source is the nearest chapter it was shown).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import snowballstemmer
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Feedback, Turn, utc_now
from shared.small_talk import small_talk_kind

SIMILAR = 0.5
EXAMPLES = 3
_WORD = re.compile(r"[^\W_]+")
_STOP_WORDS = """
    a an and are as at be by can could do does did for from how i if in into is it its me my of on or please
    should so tell that the their them there these they this to was what when where which who why will with
    would you your about explain show
"""
_STOP = frozenset(_STOP_WORDS.split())
_stemmer = snowballstemmer.stemmer("english")


def wording(question: str) -> frozenset[str]:
    """The stems a question is worded with, stop words left out (any script: Urdu words are kept whole)."""
    words = [w for w in _WORD.findall(question.casefold()) if w not in _STOP]
    return frozenset(_stemmer.stemWords(words))


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= SIMILAR


@dataclass
class _Group:
    words: frozenset[str]
    wordings: Counter[str] = field(default_factory=Counter)
    declined: int = 0
    rated_down: int = 0
    chapters: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    last_asked: datetime | None = None

    def add(self, turn: Turn, *, declined: bool, rated_down: bool) -> None:
        self.wordings[" ".join(turn.question.split())] += 1
        self.declined += int(declined)
        self.rated_down += int(rated_down)
        first = next((s for s in turn.sources if s.get("id") != "selection"), None)
        if first is not None:
            self.chapters[(str(first.get("doc", "")), str(first.get("title", "")), str(first.get("url", "")))] += 1
        if self.last_asked is None or turn.created_at > self.last_asked:
            self.last_asked = turn.created_at

    def report(self) -> dict[str, Any]:
        chapter = self.chapters.most_common(1)
        doc, title, url = chapter[0][0] if chapter else ("", "", "")
        return {
            "question": self.wordings.most_common(1)[0][0],
            "count": self.declined + self.rated_down,
            "declined": self.declined,
            "rated_down": self.rated_down,
            "wordings": [w for w, _ in self.wordings.most_common(EXAMPLES)],
            "nearest_chapter": {"doc": doc, "title": title, "url": url} if chapter else None,
            "last_asked": self.last_asked.isoformat() if self.last_asked else None,
        }


async def book_gaps(session: AsyncSession, days: int = 30, limit: int = 50) -> dict[str, Any]:
    since = utc_now() - timedelta(days=days)
    rated_down = select(Feedback.turn_id).where(Feedback.rating == "down")
    query = (
        select(Turn, Turn.id.in_(rated_down).label("rated_down"))
        .where(
            Turn.created_at >= since,
            or_(Turn.id.in_(rated_down), (Turn.status == "done") & Turn.grounded.is_(False)),
        )
        .order_by(Turn.created_at, Turn.id)
    )
    groups: list[_Group] = []
    for turn, down in (await session.execute(query)).all():
        declined = turn.grounded is False and turn.status == "done" and small_talk_kind(turn.question) is None
        if not declined and not down:
            continue  # small talk: not something the book lacks
        words = wording(turn.question)
        group = next((g for g in groups if _similar(g.words, words)), None)
        if group is None:
            group = _Group(words)
            groups.append(group)
        group.add(turn, declined=declined, rated_down=bool(down))
    reports = sorted((g.report() for g in groups), key=lambda r: (-r["count"], r["question"]))
    return {"days": days, "since": since.isoformat(), "groups": reports[:limit]}
