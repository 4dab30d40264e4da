"""Fixtures for the fake Cohere tests: a fake server in the test's loop and the real SDK pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import cohere
import pytest

from fake_cohere.testing import RunningFake, running_fake_cohere

BOOK = [
    {
        "id": "balance",
        "data": {
            "title": "Balance control",
            "text": "Humanoid robots keep their balance by tracking the zero moment point. "
            "Ankle torque corrects small balance errors while walking. "
            "The lab cafeteria serves soup on Fridays.",
        },
    },
    {
        "id": "ros",
        "data": {
            "title": "ROS 2 basics",
            "snippet": "ROS 2 nodes exchange messages over topics. "
            "A walking controller for humanoid robots runs at one kilohertz to keep balance.",
        },
    },
    {"id": "kitchen", "data": {"text": "Bake the bread for forty minutes. Let it cool before slicing."}},
]
QUESTION = "How do humanoid robots keep their balance?"


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    async with running_fake_cohere() as running:
        yield running


@pytest.fixture
async def co(fake: RunningFake) -> AsyncIterator[cohere.AsyncClientV2]:
    async with cohere.AsyncClientV2(api_key="test-key", base_url=fake.base_url) as client:
        yield client
