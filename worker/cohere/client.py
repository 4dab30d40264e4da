"""Building the Cohere SDK clients from settings (the one place the API key is unwrapped)."""

from __future__ import annotations

from dataclasses import dataclass

import cohere
import httpx
from httpx_aiohttp import AiohttpTransport

from shared.settings import Settings

# Answer streams open at once per worker, at most (WORKER_MAX_JOBS is the usual bound).
MAX_STREAMS = 512


@dataclass(frozen=True)
class CohereClients:
    """Two SDK clients on two connection pools: ``api`` for embed and rerank, ``streams`` for answer
    streams, so that hundreds of open streams never make a short call wait for a connection.

    Both pools are aiohttp's under httpx's API (``httpx_aiohttp``; the SDK takes any ``httpx.AsyncClient``):
    httpx's own pool scans every connection it holds on each request, which showed up in profiles under load
    (bench/analysis.md, items 3 and 6)."""

    api: cohere.AsyncClientV2
    streams: cohere.AsyncClientV2
    _pools: tuple[httpx.AsyncClient, ...]

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def build_cohere_clients(settings: Settings) -> CohereClients | None:
    """The async v2 clients, or None in offline mode. Retries are ours (see worker.cohere.provider), so the
    SDK's own are switched off."""
    if settings.cohere_api_key is None:
        return None
    timeout = httpx.Timeout(settings.cohere_timeout_s, connect=5.0)
    api_pool = httpx.AsyncClient(timeout=timeout, transport=AiohttpTransport(limits=httpx.Limits(max_connections=64)))
    stream_pool = httpx.AsyncClient(
        timeout=timeout, transport=AiohttpTransport(limits=httpx.Limits(max_connections=MAX_STREAMS))
    )

    def client(pool: httpx.AsyncClient) -> cohere.AsyncClientV2:
        assert settings.cohere_api_key is not None
        return cohere.AsyncClientV2(
            api_key=settings.cohere_api_key.get_secret_value(),
            base_url=str(settings.cohere_base_url).rstrip("/") if settings.cohere_base_url else None,
            httpx_client=pool,
            timeout=settings.cohere_timeout_s,
            max_retries=0,
        )

    return CohereClients(api=client(api_pool), streams=client(stream_pool), _pools=(api_pool, stream_pool))
