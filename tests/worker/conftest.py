"""Fixtures of the worker's tests: settings on a temporary data dir, and the embedded store on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.factories import knowledge_settings
from worker.knowledge.store import KnowledgeStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return knowledge_settings(tmp_path)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[KnowledgeStore]:
    opened = await KnowledgeStore.open(settings)
    yield opened
    await opened.close()
