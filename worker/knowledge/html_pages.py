"""A published Docusaurus page back to Markdown: its article's main content, headings with their anchors.

The site is the book as readers see it, so the page's own heading ``id``s are kept (written as explicit
``{#id}`` anchors, which the chunker uses as they are) and links into the page land where the site puts
them. Everything around the article is dropped: navigation bar, sidebar, breadcrumbs, table of contents,
"edit this page", pagination, the copy buttons of code blocks and the ``#`` links next to headings.

The page is parsed by lxml as browsers parse HTML: Docusaurus Faster's minifier leaves out the end tags
HTML makes optional (``</p>``, ``</li>``, ``</td>``, ``</tr>``…), and a parser that waits for them nests
each table cell in the one before it, repeating the text many times over. (html5lib reads them the same
way, at about three times lxml's CPU: bench/analysis.md.)

The Markdown is then chunked exactly like a file from a docs folder. Text is escaped so that characters
that happen to be Markdown syntax (``*``, ``_``, ``<``, ``#`` …) stay text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup
from bs4.element import Comment, Doctype, NavigableString, ProcessingInstruction, Tag

from worker.knowledge.documents import DocumentError

# Where Docusaurus (v2/v3, classic theme) puts a doc's text, most specific first.
_CONTENT_SELECTORS = (
    ".theme-doc-markdown",
    "article .markdown",
    "article",
    "main .markdown",
    "main",
    "[role=main]",
)
# Inside the content, whatever is not the page's text.
_NOISE_SELECTORS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "button",
    "nav",
    "aside",
    "form",
    "iframe",
    ".hash-link",
    ".theme-doc-breadcrumbs",
    ".theme-doc-toc-mobile",
    ".theme-doc-toc-desktop",
    ".theme-doc-footer",
    ".theme-doc-version-badge",
    ".theme-doc-version-banner",
    ".pagination-nav",
    ".theme-edit-this-page",
    ".theme-last-updated",
    ".table-of-contents",
    "[role=tablist]",
    "[aria-hidden=true]",
)
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = {
    *_HEADINGS,
    "p",
    "ul",
    "ol",
    "pre",
    "table",
    "blockquote",
    "div",
    "section",
    "details",
    "figure",
    "dl",
    "hr",
    "header",
    "footer",
    "main",
    "article",
}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|!~])")
_LINE_START_SPECIAL = re.compile(r"^(\s*)(\d*)([-+=.)])(\s|$)", re.MULTILINE)
_TITLE_SUFFIX = re.compile(r"\s+[|\u2013\u2014-]\s+[^|\u2013\u2014-]+$")
_ANCHOR_ID = re.compile(r"^[A-Za-z0-9][\w\-.:]*$")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")


@dataclass(frozen=True, slots=True)
class PageContent:
    title: str
    markdown: str  # no front matter


def page_markdown(html: str) -> PageContent:
    """The article of a Docusaurus page as Markdown; ``DocumentError`` when the page has none."""
    soup = BeautifulSoup(html, "lxml")
    page_kind = _docusaurus_listing(soup)
    if page_kind is not None:
        raise DocumentError(f"a docs listing page, not a doc ({page_kind})")
    root = _content_root(soup)
    if root is None:
        raise DocumentError("no article content (not a docs page)")
    for selector in _NOISE_SELECTORS:
        for node in root.select(selector):
            node.decompose()
    blocks = _Converter().blocks(root)
    markdown = "\n\n".join(block for block in blocks if block.strip())
    title = _title(root, soup)
    if not markdown.strip():
        raise DocumentError("no text in the article")
    return PageContent(title=title, markdown=markdown + "\n")


def _docusaurus_listing(soup: BeautifulSoup) -> str | None:
    """The page kind when Docusaurus' docs plugin made the page but it is not a doc (a tag or category
    listing, a version index); None for a doc page or a page of any other site."""
    root = soup.find("html")
    classes = _classes(root) if isinstance(root, Tag) else []
    if "plugin-docs" not in classes or "docs-doc-page" in classes:
        return None
    return next((c for c in classes if c.startswith("docs-") and c.endswith("-page")), "not docs-doc-page")


def _content_root(soup: BeautifulSoup) -> Tag | None:
    for selector in _CONTENT_SELECTORS:
        found = soup.select_one(selector)
        if found is not None:
            return found
    return None


def _title(root: Tag, soup: BeautifulSoup) -> str:
    heading = root.find("h1")
    if isinstance(heading, Tag):
        text = _plain(heading)
        if text:
            return text
    title = soup.find("title")
    if isinstance(title, Tag):
        return _TITLE_SUFFIX.sub("", _plain(title)).strip()
    return ""


def _plain(node: Tag) -> str:
    return _SPACES.sub(" ", node.get_text(" ")).strip()


def escape(text: str) -> str:
    """Text that Markdown reads back as the same text."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return _LINE_START_SPECIAL.sub(r"\1\2\\\3\4", text)


class _Converter:
    def blocks(self, node: Tag) -> list[str]:
        """Block-level Markdown of a container's children."""
        out: list[str] = []
        inline: list[str] = []

        def flush() -> None:
            text = _SPACES.sub(" ", "".join(inline)).strip()
            if text:
                out.append(text)
            inline.clear()

        for child in node.children:
            if isinstance(child, Comment | Doctype | ProcessingInstruction):
                continue
            if isinstance(child, NavigableString):
                inline.append(escape(str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            if child.name in _BLOCKS or self._is_code_container(child):
                flush()
                out.extend(self.block(child))
            else:
                inline.append(self.inline(child))
        flush()
        return out

    @staticmethod
    def _is_code_container(tag: Tag) -> bool:
        return tag.name == "span" and tag.find("pre") is not None

    def block(self, tag: Tag) -> list[str]:
        name = tag.name
        if name in _HEADINGS:
            heading = self.heading(tag)
            return [heading] if heading.strip("# ") else []
        if name == "p":
            text = _SPACES.sub(" ", self.inline_children(tag)).strip()
            return [text] if text else []
        if name in {"ul", "ol"}:
            return [self.list_block(tag)] if tag.find("li") else []
        if name == "pre":
            return [self.code(tag)]
        if name == "table":
            return [self.table(tag)]
        if name == "blockquote":
            inner = self.blocks(tag)
            return ["\n>\n".join("\n".join(f"> {line}".rstrip() for line in b.split("\n")) for b in inner)]
        if name == "hr":
            return []
        if name == "details":
            return self.details(tag)
        if name == "dl":
            return self.definitions(tag)
        classes = _classes(tag)
        if any(c.startswith("theme-admonition") or c == "admonition" for c in classes):
            return self.admonition(tag)
        pre = tag.find("pre") if any("codeBlock" in c or c.startswith("language-") for c in classes) else None
        if isinstance(pre, Tag):
            return [self.code(pre, container=tag)]
        return self.blocks(tag)

    def heading(self, tag: Tag) -> str:
        level = int(tag.name[1])
        text = _SPACES.sub(" ", self.inline_children(tag)).strip()
        anchor = tag.get("id")
        suffix = f" {{#{anchor}}}" if isinstance(anchor, str) and _ANCHOR_ID.match(anchor) and level > 1 else ""
        return f"{'#' * level} {text}{suffix}"

    def inline_children(self, tag: Tag) -> str:
        parts: list[str] = []
        for child in tag.children:
            if isinstance(child, Comment | Doctype | ProcessingInstruction):
                continue
            if isinstance(child, NavigableString):
                parts.append(escape(str(child)))
            elif isinstance(child, Tag):
                parts.append(self.inline(child))
        return "".join(parts)

    def inline(self, tag: Tag) -> str:
        name = tag.name
        if name == "br":
            return "\n"
        if name == "code":
            return _inline_code(tag.get_text())
        if name == "input" and tag.get("type") == "checkbox":  # a task list item's box
            return escape("[x]" if tag.has_attr("checked") else "[ ]")
        if name == "img":
            alt = tag.get("alt")
            return escape(alt) if isinstance(alt, str) else ""
        if name in {"strong", "b"}:
            inner = self.inline_children(tag).strip()
            return f"**{inner}**" if inner else ""
        if name in {"em", "i"}:
            inner = self.inline_children(tag).strip()
            return f"*{inner}*" if inner else ""
        if name in _BLOCKS:  # a block inside inline content (invalid HTML, still text)
            return " " + " ".join(self.blocks(tag)) + " "
        return self.inline_children(tag)

    def list_block(self, tag: Tag) -> str:
        ordered = tag.name == "ol"
        start = tag.get("start")
        number = int(start) if isinstance(start, str) and start.isdigit() else 1
        items: list[str] = []
        for item in tag.find_all("li", recursive=False):
            marker = f"{number}." if ordered else "-"
            number += 1
            body = "\n\n".join(self.blocks(item)).strip()
            if not body:
                continue
            pad = " " * (len(marker) + 1)
            first, *rest = body.split("\n")
            items.append("\n".join([f"{marker} {first}", *(f"{pad}{line}" if line else "" for line in rest)]))
        return "\n".join(items)

    def code(self, pre: Tag, container: Tag | None = None) -> str:
        for br in pre.find_all("br"):
            br.replace_with("\n")
        lines = pre.find_all(class_="token-line")
        text = "\n".join(line.get_text().rstrip("\n") for line in lines) if lines else pre.get_text()
        body = text.strip("\n")
        language = _language(pre) or (_language(container) if container is not None else "")
        ticks = "`" * max(3, _longest_backtick_run(body) + 1)
        return f"{ticks}{language}\n{body}\n{ticks}"

    def table(self, tag: Tag) -> str:
        rows: list[list[str]] = []
        header_rows = 0
        for row in tag.find_all("tr"):
            cells = [
                _SPACES.sub(" ", self.inline_children(cell)).replace("\n", " ").strip()
                for cell in row.find_all(["th", "td"])
            ]
            if not cells:
                continue
            if row.find("th") is not None and header_rows == len(rows):
                header_rows += 1
            rows.append(cells)
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        lines: list[str] = []
        if header_rows == 0:
            lines.append("| " + " | ".join([""] * width) + " |")
            lines.append("|" + "|".join([" --- "] * width) + "|")
        for index, cells in enumerate(rows):
            cells = cells + [""] * (width - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
            if index == header_rows - 1 and header_rows:
                lines.append("|" + "|".join([" --- "] * width) + "|")
        return "\n".join(lines)

    def admonition(self, tag: Tag) -> list[str]:
        classes = _classes(tag)
        kind = next((c.removeprefix("theme-admonition-") for c in classes if c.startswith("theme-admonition-")), "")
        heading = tag.find(class_=lambda c: bool(c) and "admonitionHeading" in c)
        title = _plain(heading) if isinstance(heading, Tag) else ""
        content = tag.find(class_=lambda c: bool(c) and "admonitionContent" in c)
        if isinstance(heading, Tag):
            heading.decompose()
        body = self.blocks(content if isinstance(content, Tag) else tag)
        label = (kind or "note").capitalize()
        if title and title.lower() != kind.lower():
            label += f" ({escape(title)})"
        label += ":"
        if body and not body[0].startswith("```"):
            body[0] = f"{label} {body[0]}"
        else:
            body.insert(0, label)
        return body

    def details(self, tag: Tag) -> list[str]:
        summary = tag.find("summary")
        label = _plain(summary) if isinstance(summary, Tag) else ""
        if isinstance(summary, Tag):
            summary.decompose()
        body = self.blocks(tag)
        return ([escape(label)] if label else []) + body

    def definitions(self, tag: Tag) -> list[str]:
        out: list[str] = []
        for child in tag.find_all(["dt", "dd"], recursive=False):
            text = _SPACES.sub(" ", self.inline_children(child)).strip()
            if text:
                out.append(f"**{text}**" if child.name == "dt" else text)
        return out


def _language(tag: Tag | None) -> str:
    """A code block's language; none for ``text``, which Docusaurus gives every fence that names none."""
    if tag is None:
        return ""
    for cls in _classes(tag):
        if cls.startswith("language-"):
            language = cls.removeprefix("language-")
            return "" if language == "text" else language
    return ""


def _classes(tag: Tag) -> list[str]:
    value = tag.get("class")
    if isinstance(value, str):
        return value.split()
    return [str(c) for c in value or []]


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _inline_code(text: str) -> str:
    text = text.replace("\n", " ")
    ticks = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"
