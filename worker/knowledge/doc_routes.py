"""Where Docusaurus publishes a document and its headings: routes from paths and front matter, anchors by
GitHub's slugger rules (duplicates included)."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Mapping
from pathlib import PurePosixPath

from worker.knowledge.documents import DocumentError
from worker.knowledge.front_matter import front_matter_str

# Docusaurus' number prefix rules: "01-intro" -> "intro"; "2021-05-notes" and "1.2-x" look like dates or
# versions and keep their digits.
_NUMBER_PREFIX = re.compile(r"^\d+\s*[-_.]+\s*(?P<rest>[^-_.\s].*)$")
_NOT_A_NUMBER_PREFIX = re.compile(r"^\d+[-_.]\d+")


def strip_number_prefix(name: str) -> str:
    """``01-intro`` -> ``intro``; date- and version-like names (``2024-01-x``, ``1.2-x``) are kept."""
    if _NOT_A_NUMBER_PREFIX.match(name):
        return name
    match = _NUMBER_PREFIX.match(name)
    return match.group("rest") if match else name


def base_id(doc: str, front: Mapping[str, object]) -> str:
    return front_matter_str(front, "id") or strip_number_prefix(PurePosixPath(doc).stem)


def doc_route(doc: str, front: Mapping[str, object]) -> str:
    """The path Docusaurus serves ``doc`` at, relative to the docs' base URL (always starts with '/')."""
    path = PurePosixPath(doc)
    doc_id = front_matter_str(front, "id")
    if doc_id is not None and "/" in doc_id:
        raise DocumentError("invalid front matter: 'id' cannot contain '/'")
    slug = front_matter_str(front, "slug")
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
