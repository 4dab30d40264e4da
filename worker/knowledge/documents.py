"""What the book's documents become: chunks to index, files skipped and why, and the passages a search finds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable passage of the book."""

    doc: str  # path relative to the book's root, POSIX separators
    title: str  # the document's title
    heading: str  # heading path, e.g. "Nodes and Topics > Topics > Quality of service"
    url: str  # where the passage is published, with the heading's anchor
    position: int  # index of the chunk within its document
    text: str
    content_hash: str  # sha256 of text

    @property
    def search_text(self) -> str:
        """What retrieval encodes: the heading path gives short passages their context."""
        return f"{self.heading}\n\n{self.text}" if self.heading else self.text


@dataclass(frozen=True, slots=True)
class SkippedFile:
    doc: str
    reason: str


@dataclass(slots=True)
class ChunkedBook:
    chunks: list[Chunk] = field(default_factory=list)
    documents: int = 0  # documents that produced at least one chunk
    skipped: list[SkippedFile] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk as a search returns it, with the score it was ranked by."""

    id: str
    doc: str
    title: str
    heading: str
    url: str
    text: str
    score: float


class DocumentError(ValueError):
    """A document that cannot be indexed; the message is the reason reported for it."""
