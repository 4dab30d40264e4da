"""The Markdown parser: CommonMark with GFM tables and strikethrough, plus Docusaurus admonitions
(``:::tip Title`` … ``:::``) as containers."""

from __future__ import annotations

import functools
import re

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock

_ADMONITION_OPEN = re.compile(
    r"^(?P<marker>:{3,})[ \t]*(?P<kind>[A-Za-z][\w-]*)(?:\[(?P<bracket>[^\]]*)\])?(?P<rest>.*)$"
)
_ADMONITION_CLOSE = re.compile(r"^(?P<marker>:{3,})[ \t]*$")


def new_parser() -> MarkdownIt:
    """CommonMark with GFM tables and strikethrough, plus Docusaurus admonitions as containers."""
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.block.ruler.before(
        "fence", "admonition", _admonition_rule, {"alt": ["paragraph", "reference", "blockquote", "list"]}
    )
    return md


@functools.cache
def default_parser() -> MarkdownIt:
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
