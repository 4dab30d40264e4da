"""A parsed document cut into sections at its headings, each a list of text blocks: MDX imports and JSX/HTML
tags dropped (the prose between tags kept), admonitions behind a label, code kept verbatim."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

from markdown_it.tree import SyntaxTreeNode

from worker.knowledge.doc_routes import HeadingSlugger
from worker.knowledge.markdown_parser import default_parser

_EXPLICIT_ANCHOR = re.compile(r"\s*\{#(?P<id>[^}\s]+)\}\s*$")
_MDX_ESM = re.compile(r"^(?:import|export)(?:\s|\{|\*)")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][\w.:-]*(?:\s(?:[^<>{}]|\{[^{}]*\})*)?/?>")
_JSX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.DOTALL)
_BACKTICK_RUN = re.compile(r"`{3,}")


@dataclass(slots=True)
class Block:
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
class Section:
    heading: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


def first_h1(tree: SyntaxTreeNode) -> str | None:
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


class Sectioner:
    def __init__(self, title: str) -> None:
        self._title = title
        self._slugger = HeadingSlugger()
        self._stack: list[tuple[int, str]] = []

    def run(self, tree: SyntaxTreeNode) -> list[Section]:
        current = Section(heading=self._title, anchor="")
        sections = [current]
        for node in tree.children:
            if node.type == "heading":
                current = self._open_section(node)
                sections.append(current)
            else:
                current.blocks.extend(_render(node, top_level=True))
        return [section for section in sections if section.blocks]

    def _open_section(self, node: SyntaxTreeNode) -> Section:
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
        return Section(heading=" > ".join(names), anchor="" if level == 1 else anchor)


def _render(node: SyntaxTreeNode, *, top_level: bool = False, depth: int = 0) -> list[Block]:
    kind = node.type
    if kind == "paragraph":
        text = _clean_prose(" ".join(_inline(child, plain=False) for child in node.children))
        if not text or set(text) <= {":"}:
            return []
        if top_level and _MDX_ESM.match(text):
            return []  # an MDX import/export block
        return [Block([text], sep=" ")]
    if kind in {"fence", "code_block"}:
        return [_code_block(node)]
    if kind in {"bullet_list", "ordered_list"}:
        items = _list_items(node)
        return [Block(items)] if items else []
    if kind == "table":
        rows = _table_rows(node)
        return [Block(rows)] if rows else []
    if kind == "blockquote":
        quoted = [_prefix_lines(block.text, "> ") for child in node.children for block in _render(child)]
        return [Block(quoted, sep="\n>\n")] if quoted else []
    if kind == "admonition":
        return _admonition(node)
    if kind == "html_block":
        return _html_block(node.content, depth)
    if kind == "heading":  # a heading inside a container: keep its words as a line of text
        text, _ = _heading_text(node)
        return [Block([text])] if text else []
    if kind == "hr":
        return []
    blocks = [block for child in node.children for block in _render(child, depth=depth)]
    if not blocks and node.content.strip():
        blocks = [Block([node.content.strip()])]
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


def _code_block(node: SyntaxTreeNode) -> Block:
    body = node.content.rstrip("\n")
    longest = max((len(run) for run in _BACKTICK_RUN.findall(body)), default=2)
    ticks = "`" * max(3, longest + 1)
    info = node.info.strip() if node.type == "fence" else ""
    return Block(body.split("\n"), fence=(f"{ticks}{info}", ticks))


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


def _admonition(node: SyntaxTreeNode) -> list[Block]:
    kind = node.info or "note"
    title = str(node.meta.get("title", "")).strip()
    label = kind.capitalize() + (f" ({title})" if title else "") + ":"
    blocks = [block for child in node.children for block in _render(child)]
    if blocks and blocks[0].fence is None:
        first = blocks[0]
        blocks[0] = Block([f"{label} {first.parts[0]}", *first.parts[1:]], sep=first.sep)
    else:
        blocks.insert(0, Block([label]))
    return blocks


def _html_block(source: str, depth: int) -> list[Block]:
    """JSX/HTML: drop comments and tags, then read what is left (the prose between tags) as Markdown."""
    text = _HTML_TAG.sub("", _HTML_COMMENT.sub("", source))
    text = _JSX_COMMENT.sub("", text)
    if not text.strip():
        return []
    if depth >= 2:
        return [Block([line.strip() for line in text.splitlines() if line.strip()])]
    # JSX children are indented for readability, not to make code: MDX has no indented code blocks.
    tree = SyntaxTreeNode(default_parser().parse(textwrap.dedent(text)))
    return [block for child in tree.children for block in _render(child, depth=depth + 1)]
