"""Turn a Docusaurus ``docs/`` folder into retrieval chunks.

Every Markdown (``.md``/``.mdx``) file is parsed with markdown-it-py; the syntax tree is cut into sections at
headings, and each section into chunks of at most ``max_words`` words, with a short overlap between the
pieces of a long section. A chunk knows which document and heading it came from and the URL Docusaurus
publishes that heading at, so answers can cite the book.

What is kept and what is dropped:

* YAML front matter is read (``title``, ``id``, ``slug``, ``draft``); a document whose front matter cannot
  be read is skipped with a reason, the rest of the book is still chunked.
* MDX ``import``/``export`` blocks are dropped; JSX/HTML tags are dropped but the prose between them is kept.
* Admonitions (``:::tip Title`` … ``:::``) are parsed as containers; their text is kept behind a label.
* Fenced code is kept verbatim and a code block that fits within the bound is never cut.

Routes follow Docusaurus: number prefixes (``01-``) are stripped from folder and file names, ``index``,
``README`` and a file named like its folder stand for the folder, front matter ``id`` replaces the file name
and front matter ``slug`` (absolute or relative to the folder) replaces the whole path. Heading anchors use
the GitHub slugger rules Docusaurus applies, duplicates included.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from worker.knowledge.chunk_packing import pack_section
from worker.knowledge.doc_routes import base_id, doc_route
from worker.knowledge.documents import Chunk, ChunkedBook, DocumentError, SkippedFile
from worker.knowledge.front_matter import front_matter_str, split_front_matter
from worker.knowledge.markdown_parser import default_parser, new_parser
from worker.knowledge.markdown_sections import Sectioner, first_h1

DEFAULT_MAX_WORDS = 350
DEFAULT_OVERLAP_WORDS = 40
MARKDOWN_SUFFIXES = (".md", ".mdx")
MAX_FILE_BYTES = 2_000_000  # a book chapter is tens of kilobytes; anything this big is not prose


def chunk_book(
    source: Path,
    base_url: str,
    *,
    max_words: int = DEFAULT_MAX_WORDS,
    overlap_words: int = DEFAULT_OVERLAP_WORDS,
) -> ChunkedBook:
    """Chunk every Markdown file under ``source``; files that cannot be used are reported, not raised."""
    if not source.is_dir():
        raise FileNotFoundError(f"book source {source} is not a folder")
    _check_bounds(max_words, overlap_words)
    parser = new_parser()
    book = ChunkedBook()
    for path, doc in markdown_files(source):
        name = PurePosixPath(doc)
        if any(part.startswith("_") for part in name.parts):
            book.skipped.append(SkippedFile(doc, "partial (a name starting with '_' is not a page)"))
            continue
        try:
            text = read_markdown_file(path)
            chunks = chunk_document(
                text, doc, base_url, max_words=max_words, overlap_words=overlap_words, parser=parser
            )
        except DocumentError as exc:
            book.skipped.append(SkippedFile(doc, str(exc)))
            continue
        if not chunks:
            book.skipped.append(SkippedFile(doc, "no text to index"))
            continue
        book.documents += 1
        book.chunks.extend(chunks)
    return book


def markdown_files(source: Path) -> Iterator[tuple[Path, str]]:
    """Markdown/MDX files under ``source`` in a stable order, as (path, doc relative to ``source``)."""
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "node_modules")
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(MARKDOWN_SUFFIXES):
                continue
            path = Path(root, name)
            yield path, path.relative_to(source).as_posix()


def read_markdown_file(path: Path) -> str:
    """A Markdown file's text; ``DocumentError`` (the reason to report) when it cannot be used."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DocumentError(f"too large ({size} bytes, limit {MAX_FILE_BYTES})")
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"unreadable: {exc.strerror or exc.__class__.__name__}") from None
    if b"\x00" in data[:8192]:
        raise DocumentError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not valid UTF-8 (byte offset {exc.start})") from None
    if not text.strip():
        raise DocumentError("empty file")
    return text


def chunk_document(
    text: str,
    doc: str,
    base_url: str,
    *,
    max_words: int = DEFAULT_MAX_WORDS,
    overlap_words: int = DEFAULT_OVERLAP_WORDS,
    parser: MarkdownIt | None = None,
    page_url: str | None = None,
    title: str | None = None,
) -> list[Chunk]:
    """Chunk one document's source; ``doc`` is its POSIX path relative to the book's root.

    ``page_url`` (a page fetched from the published site) replaces the URL derived from ``doc``, front
    matter and ``base_url``; ``title`` is used when the front matter has none.
    Raises ``DocumentError`` when the document must be skipped (bad front matter, a draft).
    """
    _check_bounds(max_words, overlap_words)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    front, body = split_front_matter(text)
    if front.get("draft") is True:
        raise DocumentError("draft (front matter draft: true)")
    if page_url is None:
        page_url = base_url.rstrip("/") + doc_route(doc, front)
    md = parser or default_parser()
    tree = SyntaxTreeNode(md.parse(body))

    title = front_matter_str(front, "title") or title or first_h1(tree) or base_id(doc, front)
    sections = Sectioner(title).run(tree)

    chunks: list[Chunk] = []
    for section in sections:
        url = f"{page_url}#{section.anchor}" if section.anchor else page_url
        for piece in pack_section(section.blocks, max_words, overlap_words):
            chunks.append(
                Chunk(
                    doc=doc,
                    title=title,
                    heading=section.heading,
                    url=url,
                    position=len(chunks),
                    text=piece,
                    content_hash=hashlib.sha256(piece.encode("utf-8")).hexdigest(),
                )
            )
    return chunks


def _check_bounds(max_words: int, overlap_words: int) -> None:
    if max_words < 20:
        raise ValueError("max_words must be at least 20")
    if not 0 <= overlap_words < max_words // 2:
        raise ValueError("overlap_words must be between 0 and half of max_words")
