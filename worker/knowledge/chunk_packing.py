"""A section's blocks packed into chunks of at most ``max_words`` words, with a short overlap between the
pieces of a long section; a code block that fits is never cut, and code is carried over only whole."""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.knowledge.markdown_sections import Block

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    words: int
    is_code: bool


def _word_count(text: str) -> int:
    return len(text.split())


def pack_section(blocks: list[Block], max_words: int, overlap_words: int) -> list[str]:
    """Greedy packing of whole blocks; a new chunk of the same section starts with the previous one's tail."""
    units = [unit for block in blocks for unit in _fit(block, max_words, overlap_words)]
    chunks: list[str] = []
    current: list[_Unit] = []
    size = 0
    for unit in units:
        if current and size + unit.words > max_words:
            chunks.append("\n\n".join(u.text for u in current))
            carry = _tail(current, overlap_words)
            current, size = [], 0
            if carry and sum(u.words for u in carry) + unit.words <= max_words:
                current, size = carry, sum(u.words for u in carry)
        current.append(unit)
        size += unit.words
    if current:
        chunks.append("\n\n".join(u.text for u in current))
    return chunks


def _tail(units: list[_Unit], overlap_words: int) -> list[_Unit]:
    """The last ``overlap_words`` words of a chunk: whole blocks, or the end of a prose block.

    Code is only carried over whole, so the overlap never starts in the middle of a code block.
    """
    carried: list[_Unit] = []
    room = overlap_words
    for unit in reversed(units):
        if room <= 0:
            break
        if unit.words <= room:
            carried.insert(0, unit)
            room -= unit.words
            continue
        if not unit.is_code:
            words = unit.text.split()[-room:]
            carried.insert(0, _Unit(" ".join(words), len(words), False))
        break
    return carried


def _fit(block: Block, max_words: int, overlap_words: int) -> list[_Unit]:
    """The block as one unit, or cut into units when it is longer than ``max_words`` words.

    Prose is cut into pieces that leave room for the overlap carried in front of them; code is cut into
    the largest pieces that fit, each wrapped in its own fences.
    """
    text = block.text
    words = _word_count(text)
    is_code = block.fence is not None
    if words <= max_words:
        return [_Unit(text, words, is_code)]
    if block.fence is not None:
        opening, closing = block.fence
        budget = max_words - _word_count(opening) - _word_count(closing)
        pieces = _pack_pieces(_split_long(block.parts, budget, sentences=False), "\n", budget)
        wrapped = [f"{opening}\n{piece}\n{closing}" for piece in pieces]
        return [_Unit(text, _word_count(text), True) for text in wrapped]
    budget = max_words - overlap_words
    parts = _split_long(block.parts, budget, sentences=True)
    return [_Unit(piece, _word_count(piece), False) for piece in _pack_pieces(parts, block.sep, budget)]


def _split_long(parts: list[str], budget: int, *, sentences: bool) -> list[str]:
    """Every part within ``budget`` words: long parts are cut at line ends, sentence ends, then words."""
    out: list[str] = []
    for part in parts:
        if _word_count(part) <= budget:
            out.append(part)
            continue
        if "\n" in part:
            out.extend(_pack_pieces(_split_long(part.split("\n"), budget, sentences=sentences), "\n", budget))
            continue
        pieces = _SENTENCE_END.split(part) if sentences else [part]
        if len(pieces) > 1:
            out.extend(_pack_pieces(_split_long(pieces, budget, sentences=False), " ", budget))
            continue
        words = part.split()
        out.extend(" ".join(words[i : i + budget]) for i in range(0, len(words), budget))
    return out


def _pack_pieces(pieces: list[str], sep: str, budget: int) -> list[str]:
    packed: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        words = _word_count(piece)
        if current and size + words > budget:
            packed.append(sep.join(current))
            current, size = [], 0
        current.append(piece)
        size += words
    if current:
        packed.append(sep.join(current))
    return packed
