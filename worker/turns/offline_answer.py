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
_POINTS_BACK = re.compile(r"\b(this|these|those)\b|\bsuch\b(?! as\b)", re.I)
_PLURAL_PRONOUN = re.compile(r"\b(they|them|their|these|those)\b", re.I)
_ENDS_ON_PRONOUN = re.compile(r"\b(it|this|them|these|those)[.!?]$", re.I)
_NOT_PLURAL = {"is", "was", "has", "does", "this", "its", "us", "as", "always", "sometimes", "less"}
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")

_DEFINITION_QUESTION = re.compile(
    r"^\s*(?:so\s+)?(?:what|who)\s*(?:is|are|was|were|'s)\s+(?:an?\s+|the\s+)?(?P<subject>.+?)\s*\??\s*$|"
    r"^\s*(?:define|explain|describe)\s+(?:an?\s+|the\s+)?(?P<subject2>.+?)\s*[.?!]?\s*$|"
    r"^\s*what\s+(?:does|do)\s+(?:an?\s+|the\s+)?(?P<subject3>.+?)\s+\w+(?:\s+for)?\s*\??\s*$",
    re.I,
)
# "a link in a URDF": the subject is the head, before its first preposition.
_PREPOSITION = re.compile(r"\s+(in|of|for|on|with|within|inside|from|during|when|between)\s+", re.I)
_ARTICLE = re.compile(r"^(an?|the)\s+", re.I)
_NAMES = re.compile(r"\b(the (word|term|name)|called|known as|stands for|refers to)\b", re.I)
_NAMED_WITH_ACRONYM = re.compile(r"^([^()]{1,80}?)\s*\(([^()]{1,40})\)\s+(\S+)")
_PARENTHETICAL = re.compile(r"\s*\([^()]*\)")
_DEFINES = re.compile(r"(is|are|refers to|means|stands for|describes|denotes)\b", re.I)
_WANTS_CODE = re.compile(
    r"\b(show me|example|examples|snippet|sample code|code|command line|terminal|cli|"
    r"how (do|can|would|should) (i|you|we) (write|code|implement|create|make|define|declare|build)|write an?|"
    r"implement)\b",
    re.I,
)


@dataclass(frozen=True)
class OfflinePassage:
    source_id: str
    text: str
    heading: str = ""  # the passage's title and heading path: what its code block is an example of


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
                    frozenset(content_terms(f"{language} {passage.heading} {context} {code}")),
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
    return frozenset(content_terms(_PREPOSITION.split(subject, maxsplit=1)[0]))


def _definition_weight(sentence: _Sentence, subject: frozenset[str]) -> float:
    """How much the sentence reads as the definition of the question's subject: 0, or more when it names it
    ("use the word embodiment for…") or opens with it ("A topic is…", "TF (the tf2 library) keeps…", "The
    Unified Robot Description Format (URDF) is…"; not "Topic names are…"), most with a copula."""
    if not subject or not subject <= sentence.terms:
        return 0.0
    if _NAMES.search(sentence.text):
        return 2.0
    text = _ARTICLE.sub("", sentence.text)
    named = _NAMED_WITH_ACRONYM.match(text)
    if named is not None and len(named.group(1).split()) <= 6:
        name, acronym, after = named.groups()
        opens = subject <= content_terms(name) or subject <= content_terms(acronym)
        # A name spelled out with its acronym ("… (URDF) is") is the book introducing the term.
        return (2.0 + (0.5 if _DEFINES.match(after) else 0.0)) if opens else 0.0
    words = _PARENTHETICAL.sub(" ", text).split()
    size = len(subject)
    if not subject <= content_terms(" ".join(words[:size])):
        return 0.0
    after = " ".join(words[size : size + 3])
    if len(words) > size + 1 and _DEFINES.match(words[size + 1]) and not _DEFINES.match(words[size]):
        return 0.0  # "Topic names are…": the subject is a longer noun phrase
    return 1.5 + (0.5 if _DEFINES.match(after) else 0.0)


def _leans_on_context(sentence: str) -> bool:
    if _OPENS_ON_CONTEXT.match(sentence) or _POINTS_AROUND.search(sentence) or _ENDS_ON_PRONOUN.search(sentence):
        return True
    if _POINTS_BACK.search(sentence):
        return True  # "In ROS 2 this model is…": which model?
    pronoun = _PLURAL_PRONOUN.search(sentence)
    if pronoun is None:
        return False
    # "Robots fall when their feet slip" names its referent first; "A controller that ignores them" does not
    # (the word right before the pronoun is its verb: "ignores", not a plural noun).
    before = _WORD.findall(sentence[: pronoun.start()])[:-1]
    return not any(
        w.lower().endswith("s") and not w.lower().endswith("ss") and w.lower() not in _NOT_PLURAL and len(w) > 3
        for w in before
    )


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= 0.8


def _score(sentence: _Sentence, wanted: frozenset[str], subject: frozenset[str], rarity: dict[str, float]) -> float:
    shared = wanted & sentence.terms
    if not shared:
        return 0.0
    preference = 0.2 / (sentence.rank + 1)  # a little for the passages retrieval ranked higher
    definition = _definition_weight(sentence, subject)
    if definition:
        # Definitions lead; among them the informative ones ("TF keeps a tree of coordinate frames…" over
        # "TF answers where each part is now").
        return definition + 0.03 * min(len(sentence.terms), 15) + preference
    # Overlap with the question, its rarer words counting more (rarity among the passages' sentences),
    # normalised so that long sentences do not win by length alone.
    return sum(rarity.get(t, 1.0) for t in shared) / math.sqrt(len(sentence.terms) + 1) + preference


def _sentence_rarity(sentences: Sequence[_Sentence]) -> dict[str, float]:
    """An IDF over the retrieved sentences, normalised to 1 for a term in half of them."""
    counts: dict[str, int] = {}
    for sentence in sentences:
        for term in sentence.terms:
            counts[term] = counts.get(term, 0) + 1
    total = len(sentences) or 1
    norm = math.log(1 + 2.0)
    return {term: math.log(1 + total / count) / norm for term, count in counts.items()}


def _usable(sentence: _Sentence) -> bool:
    # A sentence ending in a colon introduces what follows: usable only right before its code block.
    return 15 <= len(sentence.text) <= 500 and (sentence.text[-1] in ".!?" or sentence.before_code)


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
    rarity = _sentence_rarity(sentences)
    scored = [
        _Sentence(s.rank, s.position, s.source_id, s.text, s.terms, _score(s, wanted, subject, rarity), s.before_code)
        for s in sentences
    ]
    code = _best_code(question, wanted, codes, scored)
    lead = _lead(scored, code)
    if lead is None:
        return [], code
    chosen = [lead]
    defined = _definition_weight(lead, subject) > 0
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
        # A definition's next sentence says more about the same thing ("Worlds and models are written in SDF").
        elaborates = defined and sentence.position == lead.position + 1
        on_topic = sentence.score > 0 or elaborates or _OPENS_ON_CONTEXT.match(sentence.text)
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
    if code is not None and lead.source_id == code.source_id and lead.position < code.position:
        limit = len(chosen)  # the code's own introduction, then the code: nothing from elsewhere in between
    for sentence in others:
        if len(chosen) >= limit or (sentence.score < 0.5 * others[0].score and len(chosen) >= MIN_SENTENCES):
            break
        if not any(_similar(sentence.terms, c.terms) for c in chosen):
            chosen.append(sentence)
    head, rest = chosen[:1], chosen[1:]
    same = sorted((s for s in rest if s.source_id == lead.source_id), key=lambda s: s.position)
    elsewhere = sorted((s for s in rest if s.source_id != lead.source_id), key=lambda s: (s.rank, s.position))
    return head + same + elsewhere, code


def _lead(scored: list[_Sentence], code: _Code | None) -> _Sentence | None:
    if code is not None:
        # Code was asked for: open with the sentences right before the code block, from the first one that
        # stands on its own ("The node below subscribes…"; its "below" is the code).
        # Code was asked for: open with the sentence that introduces the code block, walking back from the
        # code over the sentences that lean on the one before ("It drives forward…"); its "below" is the code.
        before = {s.position: s for s in scored if s.source_id == code.source_id and s.position < code.position}
        position = code.position - 1
        while position in before and position >= code.position - 3:
            if not _OPENS_ON_CONTEXT.match(before[position].text):
                return before[position]
            position -= 1
        if code.position - 1 in before:
            return before[code.position - 1]  # "This fragment describes…": its "this" is the code that follows
    standalone = [s for s in scored if s.score > 0 and not _leans_on_context(s.text)]
    pool = standalone or [s for s in scored if s.score > 0]
    return max(pool, key=lambda s: (s.score, -s.rank, -s.position), default=None)


def _best_code(question: str, wanted: frozenset[str], codes: list[_Code], sentences: list[_Sentence]) -> _Code | None:
    if not codes or not _WANTS_CODE.search(question):
        return None
    introduced = {(s.source_id, s.position + 1) for s in sentences}

    def rank(code: _Code) -> tuple[float, bool, int, int]:
        # Chunks overlap, so one block can come in two passages: the one with its introduction wins.
        shared = len(wanted & code.terms) + 0.5 / (code.rank + 1)
        return (shared, (code.source_id, code.position) in introduced, -code.rank, -code.position)

    best = max(codes, key=rank)
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
