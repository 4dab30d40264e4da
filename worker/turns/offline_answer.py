"""The answer without a language model: chosen sentences of the best passages, each cited.

Offline mode must still be honest: every sentence of the answer is the book's own, quoted from a passage
that the ``sources`` event lists, and the citation says which one. It must also read well:

* it opens with the sentence that answers (for "what is X?", the sentence that defines X);
* the sentences that follow the opening in its passage come next, in the book's order, as long as they stay
  on the question; then at most a few from other passages, each passage's in the book's order;
* a sentence that leans on something the answer does not contain ("This is why…", "…ignores them") is left
  out, unless the sentence it leans on is right before it in the answer; nothing is said twice;
* 2 to 5 sentences; a question that asks for code ("show me", "example", "how do I write") also gets the
  passage's code block, fenced with its language and cited like a sentence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from worker.cohere.provider import CitationPiece, TextPiece
from worker.turns.book_scope import content_terms

NOTHING_FOUND = "I could not find anything about that in the book. Try asking with the book's own terms."
MAX_SENTENCES = 5
MIN_SENTENCES = 2

_FENCE = re.compile(r"^(?P<mark>```+|~~~+)[ \t]*(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=mark)[ \t]*$", re.S | re.M)
_UNCLOSED_FENCE = re.compile(r"^(```|~~~).*", re.S | re.M)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKUP = re.compile(r"(\*\*|__|`|^#+\s*|^\s*[-*+]\s+|^\s*\d+\.\s+|^>\s*|:::\w*)", re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
# A sentence that opens by pointing back ("It does this by…", "However, …") or around the book.
_OPENS_ON_CONTEXT = re.compile(
    r"^(it|its|this|that|these|those|they|them|their|such|here|there|also|then|so|but|and|or|however|thus|"
    r"therefore|instead|otherwise|similarly|likewise|still|yet|hence|meanwhile|finally|first|second|next)\b",
    re.I,
)
_POINTS_AROUND = re.compile(
    r"\b(this|next|previous|following|last) (chapter|section|module|lesson|example|figure|table|diagram)\b|"
    r"\b(below|above|the following)\b|\bas (shown|mentioned|discussed|described)\b",
    re.I,
)
_POINTS_BACK = re.compile(r"\b(this|these|those|such)\b", re.I)
_PLURAL_PRONOUN = re.compile(r"\b(they|them|their|these|those)\b", re.I)
_ENDS_ON_PRONOUN = re.compile(r"\b(it|this|them|these|those)[.!?]$", re.I)
_NOT_PLURAL = {"is", "was", "has", "does", "this", "its", "us", "as", "always", "sometimes", "less"}
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")

_DEFINITION_QUESTION = re.compile(
    r"^\s*(?:so\s+)?(?:what|who)\s*(?:is|are|was|were|'s)\s+(?:an?\s+|the\s+)?(?P<subject>.+?)\s*\??\s*$|"
    r"^\s*(?:define|explain|describe)\s+(?:an?\s+|the\s+)?(?P<subject2>.+?)\s*[.?!]?\s*$|"
    r"^\s*what\s+does\s+(?P<subject3>.+?)\s+(?:mean|stand for|do)\s*\??\s*$",
    re.I,
)
_PARENTHESES = re.compile(r"\([^()]*\)\s*$")
_DEFINES = re.compile(r"\b(is|are|refers to|means|stands for|describes|denotes|is called|are called)\b", re.I)
_WANTS_CODE = re.compile(
    r"\b(show me|example|examples|snippet|sample code|code|how (do|can|would|should) (i|you|we) (write|code|"
    r"implement|create|make|define|declare|build)|write an?|implement)\b",
    re.I,
)


@dataclass(frozen=True)
class OfflinePassage:
    source_id: str
    text: str


@dataclass(frozen=True)
class _Sentence:
    rank: int  # the passage's rank in retrieval
    position: int  # the sentence's place in its passage
    source_id: str
    text: str
    terms: frozenset[str]
    score: float = 0.0
    before_code: bool = False  # the last sentence before a code block (its "below" is the code)


@dataclass(frozen=True)
class _Code:
    rank: int
    position: int
    source_id: str
    language: str
    code: str
    terms: frozenset[str]

    @property
    def fenced(self) -> str:
        return f"```{self.language}\n{self.code.rstrip()}\n```"


def _prose(markdown: str) -> list[str]:
    markdown = _UNCLOSED_FENCE.sub(" ", markdown)  # a code block the chunker had to cut
    lines = [line for line in markdown.splitlines() if not line.lstrip().startswith("|")]
    text = _MARKUP.sub("", _LINK.sub(r"\1", "\n".join(lines)))
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        flat = " ".join(block.split())
        sentences.extend(s.strip() for s in _SENTENCE_END.split(flat) if s.strip())
    return sentences


def plain_sentences(markdown: str) -> list[str]:
    """Prose sentences of a Markdown passage: code, tables and markup removed."""
    return _prose(_FENCE.sub("\n\n", markdown))


def _parts(rank: int, passage: OfflinePassage) -> tuple[list[_Sentence], list[_Code]]:
    sentences: list[_Sentence] = []
    codes: list[_Code] = []
    position = 0
    cursor = 0
    text = passage.text
    for fence in [*_FENCE.finditer(text), None]:
        end = fence.start() if fence else len(text)
        prose = _prose(text[cursor:end])
        for index, sentence in enumerate(prose):
            last = fence is not None and index == len(prose) - 1
            sentences.append(
                _Sentence(rank, position, passage.source_id, sentence, frozenset(content_terms(sentence)), 0.0, last)
            )
            position += 1
        if fence is None:
            break
        language = (fence.group("info").split() or [""])[0]
        code = fence.group("code")
        if code.strip():
            context = " ".join(s.text for s in sentences[-2:])
            codes.append(
                _Code(
                    rank,
                    position,
                    passage.source_id,
                    language,
                    code,
                    frozenset(content_terms(f"{language} {context} {code}")),
                )
            )
        position += 1
        cursor = fence.end()
    return sentences, codes


def _subject(question: str) -> frozenset[str]:
    match = _DEFINITION_QUESTION.match(question)
    if match is None:
        return frozenset()
    subject = match.group("subject") or match.group("subject2") or match.group("subject3") or ""
    return frozenset(content_terms(subject))


def _defines(sentence: _Sentence, subject: frozenset[str]) -> bool:
    """The sentence opens with the subject and says what it is: "A topic is…", "The Unified Robot
    Description Format (URDF) is…"; not "Topic names are…"."""
    if not subject:
        return False
    copula = _DEFINES.search(" ".join(sentence.text.split()[:14]))
    if copula is None:
        return False
    before = _PARENTHESES.sub(lambda m: " " + m.group(0)[1:-1] + " ", sentence.text[: copula.start()])
    named = content_terms(before)
    words = content_terms(" ".join(before.split()[-1:]))  # the word right before the copula
    return subject <= named and bool(words & subject)


def _leans_on_context(sentence: str) -> bool:
    if _OPENS_ON_CONTEXT.match(sentence) or _POINTS_AROUND.search(sentence) or _ENDS_ON_PRONOUN.search(sentence):
        return True
    if _POINTS_BACK.search(sentence):
        return True  # "In ROS 2 this model is…": which model?
    pronoun = _PLURAL_PRONOUN.search(sentence)
    if pronoun is None:
        return False
    # "Robots fall when their feet slip" names its referent first; "A controller that ignores them" does not.
    subject = _WORD.findall(sentence[: pronoun.start()])[:3]
    return not any(
        w.lower().endswith("s") and not w.lower().endswith("ss") and w.lower() not in _NOT_PLURAL and len(w) > 3
        for w in subject
    )


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= 0.8


def _score(sentence: _Sentence, wanted: frozenset[str], subject: frozenset[str]) -> float:
    overlap = len(wanted & sentence.terms)
    if not overlap:
        return 0.0
    # Overlap with the question, normalised so long sentences do not win by length alone; a sentence that
    # defines the question's subject leads; a small preference for passages retrieval ranked higher.
    score = overlap / math.sqrt(len(sentence.terms) + 1) + 0.2 / (sentence.rank + 1)
    if _defines(sentence, subject):
        score += 2.0
    return score


def _usable(sentence: _Sentence) -> bool:
    return 25 <= len(sentence.text) <= 500 and sentence.text[-1] in ".!?"


def _choose(
    question: str, passages: Sequence[OfflinePassage], max_sentences: int
) -> tuple[list[_Sentence], _Code | None]:
    wanted = frozenset(content_terms(question))
    subject = _subject(question)
    sentences: list[_Sentence] = []
    codes: list[_Code] = []
    for rank, passage in enumerate(passages):
        found, blocks = _parts(rank, passage)
        sentences += [s for s in found if _usable(s)]
        codes += blocks
    scored = [
        _Sentence(s.rank, s.position, s.source_id, s.text, s.terms, _score(s, wanted, subject), s.before_code)
        for s in sentences
    ]
    code = _best_code(question, wanted, codes)
    lead = _lead(scored, code)
    if lead is None:
        return [], code
    chosen = [lead]
    # The sentences right after the opening, while they stay on the question (or lean on the one before).
    following = sorted(
        (s for s in scored if s.source_id == lead.source_id and s.position > lead.position), key=lambda s: s.position
    )
    expected = lead.position + 1
    for sentence in following:
        if len(chosen) >= max_sentences or sentence.position != expected:
            break
        if code is not None and sentence.position > code.position and code.source_id == lead.source_id:
            break  # the answer's code comes after the prose that introduces it
        on_topic = sentence.score > 0 or _OPENS_ON_CONTEXT.match(sentence.text)
        if not on_topic or (_POINTS_AROUND.search(sentence.text) and not sentence.before_code):
            break
        if not any(_similar(sentence.terms, c.terms) for c in chosen):
            chosen.append(sentence)
        expected += 1
    # Then the best of the other passages' sentences that stand on their own.
    others = sorted(
        (s for s in scored if s.score > 0 and s.source_id != lead.source_id and not _leans_on_context(s.text)),
        key=lambda s: -s.score,
    )
    limit = max_sentences if code is None else min(max_sentences, 3)
    for sentence in others:
        if len(chosen) >= limit or (sentence.score < 0.5 * lead.score and len(chosen) >= MIN_SENTENCES):
            break
        if not any(_similar(sentence.terms, c.terms) for c in chosen):
            chosen.append(sentence)
    head, rest = chosen[:1], chosen[1:]
    same = [s for s in rest if s.source_id == lead.source_id]
    elsewhere = sorted((s for s in rest if s.source_id != lead.source_id), key=lambda s: (s.rank, s.position))
    return head + same + elsewhere, code


def _lead(scored: list[_Sentence], code: _Code | None) -> _Sentence | None:
    if code is not None:
        # Code was asked for: open with the sentences right before the code block, from the first one that
        # stands on its own ("The node below subscribes…"; its "below" is the code).
        before = {s.position: s for s in scored if s.source_id == code.source_id and s.position < code.position}
        run: list[_Sentence] = []
        position = code.position - 1
        while position in before and len(run) < 3:
            run.insert(0, before[position])
            position -= 1
        for sentence in run:
            if not _OPENS_ON_CONTEXT.match(sentence.text):
                return sentence
    standalone = [s for s in scored if s.score > 0 and not _leans_on_context(s.text)]
    pool = standalone or [s for s in scored if s.score > 0]
    return max(pool, key=lambda s: (s.score, -s.rank, -s.position), default=None)


def _best_code(question: str, wanted: frozenset[str], codes: list[_Code]) -> _Code | None:
    if not codes or not _WANTS_CODE.search(question):
        return None
    best = max(codes, key=lambda c: (len(wanted & c.terms) + 0.5 / (c.rank + 1), -c.rank, -c.position))
    return best if wanted & best.terms else None


def compose(
    question: str,
    passages: Sequence[OfflinePassage],
    max_sentences: int = 4,
    *,
    note: str | None = None,
) -> Iterator[TextPiece | CitationPiece]:
    """Yield the answer word by word, with a citation after each quoted sentence and code block.

    ``note`` (one line, e.g. "this answer is the book's English" in the reader's language) comes first,
    uncited."""
    chosen, code = _choose(question, passages, max(MIN_SENTENCES, min(max_sentences, MAX_SENTENCES)))
    if not chosen and passages:
        # Nothing shares a word with the question: quote the best passage's opening instead.
        first = next((s for s in plain_sentences(passages[0].text) if len(s) >= 25), None)
        if first is not None:
            chosen = [_Sentence(0, 0, passages[0].source_id, first, frozenset())]
    if not chosen and code is None:
        yield from _words(NOTHING_FOUND)
        return
    offset = 0
    if note:
        yield from _words(f"{note}\n\n")
        offset = len(note) + 2
    pieces: list[tuple[str, str, str]] = [(s.text, s.source_id, " ") for s in chosen]
    if code is not None:
        pieces.append((code.fenced, code.source_id, "\n\n"))
    for index, (text, source_id, separator) in enumerate(pieces):
        if index:
            yield from _words(separator)
            offset += len(separator)
        yield from _words(text)
        yield CitationPiece(offset, offset + len(text), text, [source_id])
        offset += len(text)


def _words(text: str) -> Iterator[TextPiece]:
    for match in re.finditer(r"\s*\S+|\s+$", text):
        yield TextPiece(match.group(0))
