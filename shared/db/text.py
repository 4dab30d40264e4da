"""Text every backend can store. Postgres refuses NUL in text and JSONB, and strings that are not valid
UTF-8 (a lone surrogate arrives in JSON as ``"\\ud800"``); such characters become U+FFFD before they are
written, so one odd question cannot block the writer."""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def _unstorable(char: str) -> bool:
    return char == "\x00" or "\ud800" <= char <= "\udfff"


def storable(value: str) -> str:
    if value.isascii() and "\x00" not in value:
        return value
    return "".join(REPLACEMENT if _unstorable(c) else c for c in value)


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
