"""What the store says when Qdrant fails: which Qdrant (host and port, or the local folder) and why, with
the API key masked, whether read by ``status`` or raised by a search or an indexing."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.factories import knowledge_settings
from worker.knowledge.qdrant_errors import KnowledgeStoreError, QdrantErrors
from worker.knowledge.standalone_indexing import ensure_indexed
from worker.knowledge.store import KnowledgeStore


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_qdrant_is_reported_with_host_and_port_but_no_key(tmp_path: Path) -> None:
    port = closed_port()
    key = "qk-very-secret-value-123"
    settings = knowledge_settings(tmp_path, qdrant_url=f"https://127.0.0.1:{port}", qdrant_api_key=key)
    store = await KnowledgeStore.open(settings)
    try:
        status = await store.status()
        assert status.location == f"127.0.0.1:{port}"
        assert status.error is not None
        assert f"127.0.0.1:{port}" in status.error
        assert "cannot reach" in status.error
        assert key not in status.error
        assert not status.exists
        with pytest.raises(KnowledgeStoreError, match=f"127.0.0.1:{port}"):
            await ensure_indexed(store, settings, None)
        with pytest.raises(KnowledgeStoreError) as raised:
            await store.search("robot", None, 3)
        assert key not in str(raised.value)
    finally:
        await store.close()


def test_a_refused_key_names_the_setting_and_never_the_key() -> None:
    key = "qk-very-secret-value-123"
    errors = QdrantErrors("qdrant.example:443", remote=True, secrets=[key])
    refused = UnexpectedResponse(401, "Unauthorized", f"bad key {key}".encode(), httpx.Headers())
    assert errors.describe(refused) == (
        "Qdrant at qdrant.example:443 refused the request (HTTP 401): check QDRANT_API_KEY"
    )
    echoed = errors.describe(ConnectionError(f"connect failed for api-key={key}\ntraceback line"))
    assert echoed == "cannot reach Qdrant at qdrant.example:443: ConnectionError: connect failed for api-key=***"


async def test_guard_wraps_a_failure_in_a_store_error_saying_what_failed() -> None:
    errors = QdrantErrors("local:/data/qdrant", remote=False)

    async def fails() -> int:
        raise OSError("disk full")

    with pytest.raises(KnowledgeStoreError, match=r"^cannot count 'x': Qdrant at local:/data/qdrant failed: OSError"):
        await errors.guard("cannot count 'x'", fails())
