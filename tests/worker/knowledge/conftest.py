"""Fixtures of the knowledge base's tests: a small book on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import SMALL_BOOK, write_book


@pytest.fixture
def book(tmp_path: Path) -> Path:
    """``SMALL_BOOK`` written under ``tmp_path``: three chapters, six chunks."""
    return write_book(tmp_path / "book", SMALL_BOOK)
