"""Fixtures of the worker's tests: settings on a temporary data dir, the embedded store on them, and the event
loops the tests run on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.factories import knowledge_settings
from worker.knowledge.store import KnowledgeStore
from worker.runtime.starts_first_loop import StartsFirstEventLoop

# How a worker takes and starts turns is tested on asyncio's own loop and on the one ``python -m worker`` runs.
ON_BOTH_LOOPS = {"test_turn_intake.py"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return knowledge_settings(tmp_path)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[KnowledgeStore]:
    opened = await KnowledgeStore.open(settings)
    yield opened
    await opened.close()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.path.name in ON_BOTH_LOOPS:
        return {"asyncio_loop": asyncio.new_event_loop, "starts_first_loop": StartsFirstEventLoop}
    return {"asyncio_loop": asyncio.new_event_loop}
