"""Reaching a Qdrant server: its URL used as written, the port made explicit (never qdrant-client's 6333)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import AnyHttpUrl, TypeAdapter

from worker.knowledge.qdrant_backends import remote_client, remote_endpoint


@pytest.mark.parametrize(
    ("url", "host", "port", "https", "prefix"),
    [
        ("https://abc.eu-central.aws.cloud.qdrant.io", "abc.eu-central.aws.cloud.qdrant.io", 443, True, ""),
        ("https://qdrant.example.com/", "qdrant.example.com", 443, True, ""),
        ("http://qdrant.internal", "qdrant.internal", 80, False, ""),
        ("http://localhost:6333", "localhost", 6333, False, ""),
        ("https://proxy.example.com:8443/qdrant/", "proxy.example.com", 8443, True, "/qdrant"),
        ("HTTPS://Upper.Example.com", "upper.example.com", 443, True, ""),
    ],
)
def test_remote_endpoint(url: str, host: str, port: int, https: bool, prefix: str) -> None:
    endpoint = remote_endpoint(url)
    assert (endpoint.host, endpoint.port, endpoint.https, endpoint.prefix) == (host, port, https, prefix)
    assert endpoint.location == f"{host}:{port}"


def test_remote_endpoint_rejects_non_http_urls() -> None:
    for bad in ["ftp://example.com", "example.com:6333", "http://", "http://host:99999"]:
        with pytest.raises(ValueError):
            remote_endpoint(bad)
    assert remote_endpoint("http://[::1]:6333").location == "[::1]:6333"


@pytest.mark.parametrize(
    ("url", "rest_uri"),
    [
        ("https://abc.cloud.qdrant.io", "https://abc.cloud.qdrant.io:443"),
        (
            str(TypeAdapter(AnyHttpUrl).validate_python("https://abc.cloud.qdrant.io")),
            "https://abc.cloud.qdrant.io:443/",
        ),
        ("http://qdrant.internal", "http://qdrant.internal:80"),
        ("http://localhost:6333", "http://localhost:6333"),
        ("https://proxy.example.com/qdrant", "https://proxy.example.com:443/qdrant"),
    ],
)
async def test_remote_client_uses_the_url_as_written(url: str, rest_uri: str) -> None:
    client = remote_client(url, None)
    try:
        # qdrant-client's own computed address (private, but it is the thing that must not get :6333)
        remote: Any = client._client
        assert remote.rest_uri == rest_uri
    finally:
        await client.close()
