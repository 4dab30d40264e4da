"""Building the Cohere SDK client from settings (the one place the API key is unwrapped)."""

from __future__ import annotations

import cohere
import httpx

from shared.settings import Settings


def build_cohere_client(settings: Settings) -> tuple[cohere.AsyncClientV2, httpx.AsyncClient] | None:
    """The async v2 client and the httpx client under it (to close), or None in offline mode.

    Retries are ours (see worker.cohere_provider), so the SDK's own are switched off; the httpx client is
    ours so that its pool is sized for many concurrent streams and closed with the worker."""
    if settings.cohere_api_key is None:
        return None
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.cohere_timeout_s, connect=5.0),
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
    )
    client = cohere.AsyncClientV2(
        api_key=settings.cohere_api_key.get_secret_value(),
        base_url=str(settings.cohere_base_url).rstrip("/") if settings.cohere_base_url else None,
        httpx_client=http,
        timeout=settings.cohere_timeout_s,
        max_retries=0,
    )
    return client, http
