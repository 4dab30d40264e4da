"""The embed call decoded with orjson: the same vectors as the SDK's own ``embed``, the same errors, over HTTP
to the fake Cohere server through the production client (aiohttp underneath)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import cohere
import pytest
from cohere.core.api_error import ApiError

from fake_cohere.testing import RunningFake
from tests.conftest import SettingsFactory
from worker.cohere.client import build_cohere_clients
from worker.cohere.embed import embed_floats
from worker.cohere.retries import classify

TEXTS = ["How do humanoid robots keep their balance?", "ROS 2 nodes exchange messages over topics.", "ünïcode ✓"]


@pytest.fixture
async def client(cohere_settings: SettingsFactory) -> AsyncIterator[cohere.AsyncClientV2]:
    clients = build_cohere_clients(cohere_settings())
    assert clients is not None
    try:
        yield clients.api
    finally:
        await clients.aclose()


@pytest.mark.parametrize(("input_type", "dimension"), [("search_query", 256), ("search_document", 64)])
async def test_the_vectors_are_the_sdks(client: cohere.AsyncClientV2, input_type: str, dimension: int) -> None:
    ours = await embed_floats(
        client, texts=TEXTS, model="embed-v4.0", input_type=input_type, output_dimension=dimension
    )
    sdk = await client.embed(
        texts=TEXTS, model="embed-v4.0", input_type=input_type, embedding_types=["float"], output_dimension=dimension
    )
    assert ours == sdk.embeddings.float_
    assert [len(vector) for vector in ours] == [dimension] * len(TEXTS)


async def test_a_refusal_is_the_sdks_error_and_is_classified(
    client: cohere.AsyncClientV2, fake_cohere: RunningFake
) -> None:
    await fake_cohere.set_knobs(fail_status=429, fail_count=1, retry_after_ms=1500, fail_endpoints=["embed"])
    with pytest.raises(ApiError) as raised:
        await embed_floats(client, texts=TEXTS, model="embed-v4.0", input_type="search_query", output_dimension=256)
    assert raised.value.status_code == 429
    assert raised.value.body == {"message": "fake failure injected (429)"}
    retryable, failure = classify(raised.value)
    assert retryable and failure.code == "rate_limited" and failure.retry_after == 1.5
    # the next call goes through: the failure was the fake's one injected refusal, not a broken client
    assert (
        len(
            await embed_floats(
                client, texts=TEXTS[:1], model="embed-v4.0", input_type="search_query", output_dimension=256
            )
        )
        == 1
    )
