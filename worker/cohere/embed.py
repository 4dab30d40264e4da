"""Cohere's embed call, its vectors decoded with orjson instead of the SDK's models.

The request is the SDK's own (client, path, body); a refusal raises the SDK's ``ApiError``, which
``worker.cohere.retries.classify`` reads. Decoding a vector through the SDK's models kept the event loop busy
for milliseconds on every turn (bench/analysis.md, item 17).
"""

from __future__ import annotations

from typing import Any

import cohere
import orjson
from cohere.core.api_error import ApiError


class MalformedEmbedResponse(Exception):
    """A 2xx answer without one float vector per text."""


def _body(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode(errors="replace")


async def embed_floats(
    client: cohere.AsyncClientV2,
    *,
    texts: list[str],
    model: str,
    input_type: str,
    output_dimension: int | None,
) -> list[list[float]]:
    """One float vector per text, in order."""
    body: dict[str, Any] = {"texts": texts, "model": model, "input_type": input_type, "embedding_types": ["float"]}
    if output_dimension is not None:  # only v4 models take it
        body["output_dimension"] = output_dimension
    response = await client._client_wrapper.httpx_client.request(
        "v2/embed", method="POST", json=body, headers={"content-type": "application/json"}
    )
    if not 200 <= response.status_code < 300:
        raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=_body(response.content))
    try:
        vectors = orjson.loads(response.content)["embeddings"]["float"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise MalformedEmbedResponse("no float embeddings in the answer") from exc
    if not isinstance(vectors, list) or len(vectors) != len(texts):
        raise MalformedEmbedResponse(f"{len(vectors) if isinstance(vectors, list) else 0} vectors for {len(texts)}")
    return vectors
