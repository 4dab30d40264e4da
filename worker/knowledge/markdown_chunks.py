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

import functools
import hashlib
import os
import posixpath
import re
import textwrap
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.tree import SyntaxTreeNode

DEFAULT_MAX_WORDS = 350
DEFAULT_OVERLAP_WORDS = 40
MARKDOWN_SUFFIXES = (".md", ".mdx")
MAX_FILE_BYTES = 2_000_000  # a book chapter is tens of kilobytes; anything this big is not prose

# Docusaurus' number prefix rules: "01-intro" -> "intro"; "2021-05-notes" and "1.2-x" look like dates or
# versions and keep their digits.
_NUMBER_PREFIX = re.compile(r"^\d+\s*[-_.]+\s*(?P<rest>[^-_.\s].*)$")
_NOT_A_NUMBER_PREFIX = re.compile(r"^\d+[-_.]\d+")
_EXPLICIT_ANCHOR = re.compile(r"\s*\{#(?P<id>[^}\s]+)\}\s*$")
_ADMONITION_OPEN = re.compile(
    r"^(?P<marker>:{3,})[ \t]*(?P<kind>[A-Za-z][\w-]*)(?:\[(?P<bracket>[^\]]*)\])?(?P<rest>.*)$"
)
_ADMONITION_CLOSE = re.compile(r"^(?P<marker>:{3,})[ \t]*$")
_MDX_ESM = re.compile(r"^(?:import|export)(?:\s|\{|\*)")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][\w.:-]*(?:\s(?:[^<>{}]|\{[^{}]*\})*)?/?>")
_JSX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BACKTICK_RUN = re.compile(r"`{3,}")


# --------------------------------------------------------------------------------------------------
# Public data


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


class DocumentError(ValueError):
    """A document that cannot be indexed; the message is the reason reported for it."""


# --------------------------------------------------------------------------------------------------
# Folder walking


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


# --------------------------------------------------------------------------------------------------
# One document


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
    md = parser or _default_parser()
    tree = SyntaxTreeNode(md.parse(body))

    title = _front_matter_str(front, "title") or title or _first_h1(tree) or _base_id(doc, front)
    sections = _Sectioner(title).run(tree)

    chunks: list[Chunk] = []
    for section in sections:
        url = f"{page_url}#{section.anchor}" if section.anchor else page_url
        for piece in _pack_section(section.blocks, max_words, overlap_words):
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


def split_front_matter(text: str) -> tuple[dict[str, object], str]:
    """Split YAML front matter (between two ``---`` lines at the very top) from the body."""
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].rstrip() == "---":
            break
    else:
        raise DocumentError("invalid front matter: no closing '---' line")
    raw = "\n".join(lines[1:end])
    body = "\n".join(lines[end + 1 :])
    try:
        data = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise DocumentError(f"invalid front matter: {_yaml_problem(exc)}") from None
    if data is None:
        return {}, body
    if not isinstance(data, dict):
        raise DocumentError(f"invalid front matter: expected key: value pairs, got {type(data).__name__}")
    return {str(key): value for key, value in data.items()}, body


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        # +2: marks are 0-based and the opening '---' is line 1 of the file
        return f"{exc.problem or 'YAML error'} (line {exc.problem_mark.line + 2})"
    first_line = str(exc).strip().splitlines()
    return first_line[0] if first_line else "YAML error"


def _front_matter_str(front: Mapping[str, object], key: str) -> str | None:
    value = front.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DocumentError(f"invalid front matter: '{key}' must be text, got {type(value).__name__}")
    text = str(value).strip()
    return text or None


# --------------------------------------------------------------------------------------------------
# Routes and anchors


def strip_number_prefix(name: str) -> str:
    """``01-intro`` -> ``intro``; date- and version-like names (``2024-01-x``, ``1.2-x``) are kept."""
    if _NOT_A_NUMBER_PREFIX.match(name):
        return name
    match = _NUMBER_PREFIX.match(name)
    return match.group("rest") if match else name


def _base_id(doc: str, front: Mapping[str, object]) -> str:
    return _front_matter_str(front, "id") or strip_number_prefix(PurePosixPath(doc).stem)


def doc_route(doc: str, front: Mapping[str, object]) -> str:
    """The path Docusaurus serves ``doc`` at, relative to the docs' base URL (always starts with '/')."""
    path = PurePosixPath(doc)
    doc_id = _front_matter_str(front, "id")
    if doc_id is not None and "/" in doc_id:
        raise DocumentError("invalid front matter: 'id' cannot contain '/'")
    slug = _front_matter_str(front, "slug")
    if slug is not None and slug.startswith("/"):
        return slug

    folders = path.parent.parts if str(path.parent) != "." else ()
    folder_route = "/" + "".join(f"{strip_number_prefix(part)}/" for part in folders)
    stem = path.stem
    is_index = stem.lower() in {"index", "readme"} or (bool(folders) and stem.lower() == folders[-1].lower())
    if slug is None and is_index:
        return folder_route
    target = slug or doc_id or strip_number_prefix(stem)
    route = posixpath.normpath(posixpath.join(folder_route, target))
    route = "/" + route.lstrip("/")  # normpath keeps a leading '//'
    if target.endswith("/") and route != "/":
        route += "/"
    return route


def github_slug(text: str) -> str:
    """GitHub's heading slug: lower-case, punctuation and symbols removed, each space becomes '-'."""
    kept = [ch for ch in text.lower() if ch in " -_" or ch.isalnum() or unicodedata.category(ch)[0] in {"L", "M", "N"}]
    return "".join(kept).replace(" ", "-")


class HeadingSlugger:
    """Unique anchors within one page: a repeated slug gets ``-1``, ``-2`` … like github-slugger."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def slug(self, text: str) -> str:
        base = github_slug(text)
        candidate = base
        while candidate in self._seen:
            self._seen[base] += 1
            candidate = f"{base}-{self._seen[base]}"
        self._seen[candidate] = 0
        return candidate

    def reserve(self, anchor: str) -> str:
        """An explicit ``{#id}`` anchor: used as written, and remembered so later slugs avoid it."""
        self._seen.setdefault(anchor, 0)
        return anchor


# --------------------------------------------------------------------------------------------------
# Parsing


def new_parser() -> MarkdownIt:
    """CommonMark with GFM tables and strikethrough, plus Docusaurus admonitions as containers."""
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.block.ruler.before(
        "fence", "admonition", _admonition_rule, {"alt": ["paragraph", "reference", "blockquote", "list"]}
    )
    return md


@functools.cache
def _default_parser() -> MarkdownIt:
    return new_parser()  # parsing keeps no state in the parser object, so one can be shared


def _line(state: StateBlock, line: int) -> str:
    return state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]


def _admonition_rule(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """``:::kind[ title]`` … ``:::`` (a closing line needs at least as many colons as the opening one)."""
    first = state.bMarks[start] + state.tShift[start]
    if first >= len(state.src) or state.src[first] != ":":  # runs at every line: reject cheaply
        return False
    if state.is_code_block(start):
        return False
    opening = _ADMONITION_OPEN.match(_line(state, start))
    if opening is None:
        return False
    if silent:
        return True
    width = len(opening.group("marker"))
    close = start + 1
    closed = False
    while close < end:
        if state.sCount[close] < state.blkIndent and not state.isEmpty(close):
            break  # the enclosing container (a list item, a quote) ended first
        ending = _ADMONITION_CLOSE.match(_line(state, close))
        if ending is not None and len(ending.group("marker")) >= width and state.sCount[close] < state.blkIndent + 4:
            closed = True
            break
        close += 1

    title = (opening.group("bracket") or opening.group("rest")).strip()
    old_parent, old_line_max = state.parentType, state.lineMax
    state.parentType = "admonition"
    state.lineMax = close
    token = state.push("admonition_open", "div", 1)
    token.info = opening.group("kind").lower()
    token.meta = {"title": title}
    token.block = True
    token.map = [start, close]
    state.md.block.tokenize(state, start + 1, close)
    token = state.push("admonition_close", "div", -1)
    token.block = True
    state.parentType, state.lineMax = old_parent, old_line_max
    state.line = close + 1 if closed else close
    return True


# --------------------------------------------------------------------------------------------------
# Tree -> sections of blocks


@dataclass(slots=True)
class _Block:
    """Rendered text of one Markdown block, in pieces that may be separated if the block is too long."""

    parts: list[str]
    sep: str = "\n"
    fence: tuple[str, str] | None = None  # opening and closing fence lines of a code block

    @property
    def text(self) -> str:
        body = self.sep.join(self.parts)
        if self.fence is None:
            return body
        return f"{self.fence[0]}\n{body}\n{self.fence[1]}"


@dataclass(slots=True)
class _Section:
    heading: str
    anchor: str
    blocks: list[_Block] = field(default_factory=list)


def _first_h1(tree: SyntaxTreeNode) -> str | None:
    for node in tree.children:
        if node.type == "heading" and node.tag == "h1":
            text, _ = _heading_text(node)
            return text or None
    return None


def _heading_text(node: SyntaxTreeNode) -> tuple[str, str | None]:
    raw = " ".join(_inline(child, plain=True) for child in node.children).strip()
    explicit = _EXPLICIT_ANCHOR.search(raw)
    if explicit is None:
        return raw, None
    return raw[: explicit.start()].strip(), explicit.group("id")


class _Sectioner:
    def __init__(self, title: str) -> None:
        self._title = title
        self._slugger = HeadingSlugger()
        self._stack: list[tuple[int, str]] = []

    def run(self, tree: SyntaxTreeNode) -> list[_Section]:
        current = _Section(heading=self._title, anchor="")
        sections = [current]
        for node in tree.children:
            if node.type == "heading":
                current = self._open_section(node)
                sections.append(current)
            else:
                current.blocks.extend(_render(node, top_level=True))
        return [section for section in sections if section.blocks]

    def _open_section(self, node: SyntaxTreeNode) -> _Section:
        level = int(node.tag[1:])
        text, explicit = _heading_text(node)
        anchor = self._slugger.reserve(explicit) if explicit else self._slugger.slug(text)
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text or self._title))
        names = [name for _, name in self._stack]
        if self._stack[0][0] != 1:
            names.insert(0, self._title)
        # The H1 is the page itself: its passages link to the page, not to an anchor at its top.
        return _Section(heading=" > ".join(names), anchor="" if level == 1 else anchor)


def _render(node: SyntaxTreeNode, *, top_level: bool = False, depth: int = 0) -> list[_Block]:
    kind = node.type
    if kind == "paragraph":
        text = _clean_prose(" ".join(_inline(child, plain=False) for child in node.children))
        if not text or set(text) <= {":"}:
            return []
        if top_level and _MDX_ESM.match(text):
            return []  # an MDX import/export block
        return [_Block([text], sep=" ")]
    if kind in {"fence", "code_block"}:
        return [_code_block(node)]
    if kind in {"bullet_list", "ordered_list"}:
        items = _list_items(node)
        return [_Block(items)] if items else []
    if kind == "table":
        rows = _table_rows(node)
        return [_Block(rows)] if rows else []
    if kind == "blockquote":
        quoted = [_prefix_lines(block.text, "> ") for child in node.children for block in _render(child)]
        return [_Block(quoted, sep="\n>\n")] if quoted else []
    if kind == "admonition":
        return _admonition(node)
    if kind == "html_block":
        return _html_block(node.content, depth)
    if kind == "heading":  # a heading inside a container: keep its words as a line of text
        text, _ = _heading_text(node)
        return [_Block([text])] if text else []
    if kind == "hr":
        return []
    blocks = [block for child in node.children for block in _render(child, depth=depth)]
    if not blocks and node.content.strip():
        blocks = [_Block([node.content.strip()])]
    return blocks


def _inline(node: SyntaxTreeNode, *, plain: bool) -> str:
    kind = node.type
    if kind == "text":
        return node.content
    if kind == "code_inline":
        return node.content if plain else f"`{node.content}`"
    if kind == "softbreak":
        return " "
    if kind == "hardbreak":
        return "\n"
    if kind == "html_inline":
        return ""  # the tag itself; the text around it is kept
    if kind == "image":
        return node.content  # the alt text
    return "".join(_inline(child, plain=plain) for child in node.children)


def _clean_prose(text: str) -> str:
    return _JSX_COMMENT.sub("", text).strip()


def _code_block(node: SyntaxTreeNode) -> _Block:
    body = node.content.rstrip("\n")
    longest = max((len(run) for run in _BACKTICK_RUN.findall(body)), default=2)
    ticks = "`" * max(3, longest + 1)
    info = node.info.strip() if node.type == "fence" else ""
    return _Block(body.split("\n"), fence=(f"{ticks}{info}", ticks))


def _list_items(node: SyntaxTreeNode) -> list[str]:
    ordered = node.type == "ordered_list"
    number = int(node.attrs.get("start", 1)) if ordered else 0
    items: list[str] = []
    for item in node.children:
        marker = f"{number}." if ordered else "-"
        number += 1
        body = "\n".join(block.text for child in item.children for block in _render(child))
        if not body.strip():
            continue
        first, *rest = body.split("\n")
        pad = " " * (len(marker) + 1)
        items.append("\n".join([f"{marker} {first}", *(f"{pad}{line}" if line else "" for line in rest)]))
    return items


def _table_rows(node: SyntaxTreeNode) -> list[str]:
    rows: list[str] = []
    for section in node.children:
        for row in section.children:
            cells = [_clean_prose(" ".join(_inline(c, plain=False) for c in cell.children)) for cell in row.children]
            rows.append("| " + " | ".join(cells) + " |")
            if section.type == "thead":
                rows.append("|" + "|".join(" --- " for _ in cells) + "|")
    return rows


def _prefix_lines(text: str, prefix: str) -> str:
    return "\n".join(f"{prefix}{line}".rstrip() for line in text.split("\n"))


def _admonition(node: SyntaxTreeNode) -> list[_Block]:
    kind = node.info or "note"
    title = str(node.meta.get("title", "")).strip()
    label = kind.capitalize() + (f" ({title})" if title else "") + ":"
    blocks = [block for child in node.children for block in _render(child)]
    if blocks and blocks[0].fence is None:
        first = blocks[0]
        blocks[0] = _Block([f"{label} {first.parts[0]}", *first.parts[1:]], sep=first.sep)
    else:
        blocks.insert(0, _Block([label]))
    return blocks


def _html_block(source: str, depth: int) -> list[_Block]:
    """JSX/HTML: drop comments and tags, then read what is left (the prose between tags) as Markdown."""
    text = _HTML_TAG.sub("", _HTML_COMMENT.sub("", source))
    text = _JSX_COMMENT.sub("", text)
    if not text.strip():
        return []
    if depth >= 2:
        return [_Block([line.strip() for line in text.splitlines() if line.strip()])]
    # JSX children are indented for readability, not to make code: MDX has no indented code blocks.
    tree = SyntaxTreeNode(_default_parser().parse(textwrap.dedent(text)))
    return [block for child in tree.children for block in _render(child, depth=depth + 1)]


# --------------------------------------------------------------------------------------------------
# Sections -> bounded chunks


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    words: int
    is_code: bool


def _word_count(text: str) -> int:
    return len(text.split())


def _pack_section(blocks: list[_Block], max_words: int, overlap_words: int) -> list[str]:
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


def _fit(block: _Block, max_words: int, overlap_words: int) -> list[_Unit]:
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
