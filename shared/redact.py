"""Book sources shown to people: a sitemap URL may carry a password or a token (``BOOK_SOURCE``, a
re-index request's ``source``), and whatever reaches a log line, a progress report or an error message
shows the source without them."""

from __future__ import annotations

import re

MASK = "***"

_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*://")
# A URL inside free text (a log message): up to the first space or quote that ends it.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


def display_source(source: str) -> str:
    """``source`` for people: a folder path as it is; a URL without its user and password, and with the
    values of its query and its fragment masked. Scheme, host, port and path stay, so an operator can
    still tell which book it is; a shown source shows the same again."""
    start = _SCHEME.match(source)
    if start is None:
        return source
    head, rest = source[: start.end()].strip(), source[start.end() :]
    # RFC 3986's split: authority up to the first / ? #, path up to ? #, query up to #, then the fragment
    rest, hash_sign, fragment = rest.partition("#")
    rest, question_mark, query = rest.partition("?")
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    host = authority.rpartition("@")[2]
    shown = head + (host if _is_host_and_port(host) else MASK) + path
    if question_mark:
        shown += "?" + "&".join(_masked_parameter(p) for p in query.split("&"))
    if hash_sign:
        shown += "#" + (MASK if fragment else "")
    return shown


def _is_host_and_port(authority: str) -> bool:
    """False for what cannot be a host and port: a ``user:password`` whose ``@host`` was cut off (a log
    line shortened by a library)."""
    if authority.endswith("]"):  # an IPv6 literal without a port
        return True
    _, colon, port = authority.rpartition(":")
    return not colon or port.isdigit() or not port


def _masked_parameter(parameter: str) -> str:
    name, equals, value = parameter.partition("=")
    if not equals:  # a bare ``?abc123`` can be the token itself
        return MASK if parameter else ""
    return f"{name}={MASK if value else ''}"


def mask_urls(text: str) -> str:
    """Every URL in ``text`` as ``display_source`` shows it: for lines written by libraries (an HTTP
    client's request line, a job queue's argument list) that may quote a source."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(_shown_in_text, text)


def _shown_in_text(match: re.Match[str]) -> str:
    # closing punctuation after a URL belongs to the sentence: "(from https://host/x)"
    url = match.group()
    address = url.rstrip(").,;]")
    if address.count("[") > address.count("]"):
        address += "]"  # an IPv6 literal's own bracket
    return display_source(address) + url[len(address) :]
