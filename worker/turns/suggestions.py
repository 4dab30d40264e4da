"""What to ask next: up to three short questions from the book's own headings, with no model call.

They come from the sections next to the ones the answer drew on (the next section first: where the reader
would go on reading), then the other sections the answer drew on; headings that say nothing on their own
("Overview", "Summary", "Step 2") and those the question already asked about are left out.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from worker.turns.book_scope import content_terms

MAX_SUGGESTIONS = 3
MAX_WORDS = 8

_GENERIC = re.compile(
    r"^(introduction|overview|summary|conclusions?|next steps?|prerequisites|learning (objectives|outcomes)|"
    r"objectives|exercises?|references|resources|further reading|key (takeaways|concepts)|review questions|"
    r"quiz|glossary|setup|installation|examples?|usage( example)?|notes?|tips|faq|table of contents|"
    r"step \d+.*|part \d+.*|module \d+.*|chapter \d+.*|appendix.*|what you.ll (learn|build).*|"
    r"best practices|troubleshooting|common issues|challenges|background|motivation|structure|format)$",
    re.I,
)
_QUESTION_START = re.compile(r"^(how|why|what|when|which|where|who|can|should|does|do|is|are)\b", re.I)
_PLACEHOLDER = re.compile(r"[\[\]{}<>]")

Outline = Callable[[str], Awaitable[list[tuple[str, str]]]]


def leaf(heading_path: str) -> str:
    return heading_path.rsplit(">", 1)[-1].strip()


def as_question(heading: str) -> str | None:
    """A heading turned into a short question, or None when it makes a poor one."""
    text = " ".join(heading.replace("`", "").split()).rstrip(":.")
    if not text or _GENERIC.match(text) or _PLACEHOLDER.search(text) or len(text.split()) > MAX_WORDS:
        return None
    if not re.search(r"[A-Za-z]", text):
        return None
    if text.endswith("?"):
        return text
    if _QUESTION_START.match(text):
        return text if text.endswith("?") else f"{text}?"
    return f"What about {text}?"


async def follow_up_questions(question: str, drew_on: Sequence[tuple[str, str]], outline: Outline) -> list[str]:
    """Questions from the sections around ``drew_on`` ((doc, heading path) in the answer's order)."""
    asked = content_terms(question)
    drawn = {(doc, heading) for doc, heading in drew_on}
    candidates: list[str] = []
    later: list[str] = []
    outlines: dict[str, list[str]] = {}
    for doc, heading in drew_on:
        if doc not in outlines:
            outlines[doc] = [h for h, _ in await outline(doc)]
        sections = outlines[doc]
        if heading in sections:
            at = sections.index(heading)
            neighbours = [sections[i] for i in (at + 1, at - 1) if 0 <= i < len(sections)]
            candidates += [h for h in neighbours if (doc, h) not in drawn]
        later.append(heading)
    suggestions: list[str] = []
    seen: set[str] = set()
    for heading in [*candidates, *later[1:]]:
        name = leaf(heading)
        suggestion = as_question(name)
        if suggestion is None or suggestion.casefold() in seen:
            continue
        terms = content_terms(name)
        if not terms or terms <= asked:
            continue  # the question was about this already
        seen.add(suggestion.casefold())
        suggestions.append(suggestion)
        if len(suggestions) == MAX_SUGGESTIONS:
            break
    return suggestions
