"""Text every backend can store. Postgres refuses NUL in text and JSONB, and strings that are not valid
UTF-8 (a lone surrogate arrives in JSON as ``"\\ud800"``); such characters become U+FFFD before they are
written, so one odd question cannot block the writer."""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"

# One scan in C, not a Python test per character: sources and answers are mostly clean non-ASCII text, and
# checking them was a few per cent of a busy worker's time (bench/analysis.md, item 25).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    """``value`` itself when it is clean, so callers can tell by identity that nothing changed."""
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(REPLACEMENT, value)


def storable_or_none(value: str | None) -> str | None:
    return None if value is None else storable(value)


def storable_json(value: Any) -> Any:
    if isinstance(value, dict) and all(
        type(v) is not list and type(v) is not dict and (type(v) is not str or storable(v) is v) for v in value.values()
    ):
        return value  # the common case: a flat object of clean text, returned as it is
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [storable_json(v) for v in value]
    if isinstance(value, dict):
        return {storable(str(k)): storable_json(v) for k, v in value.items()}
    return value
