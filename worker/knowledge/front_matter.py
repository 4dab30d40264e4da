"""A Markdown document's YAML front matter (``title``, ``id``, ``slug``, ``draft``), read strictly: a document
whose front matter cannot be read is skipped with the reason."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from worker.knowledge.documents import DocumentError


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


def front_matter_str(front: Mapping[str, object], key: str) -> str | None:
    value = front.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DocumentError(f"invalid front matter: '{key}' must be text, got {type(value).__name__}")
    text = str(value).strip()
    return text or None
