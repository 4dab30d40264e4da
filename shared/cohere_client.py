"""Building the Cohere SDK clients from settings (the one place the API key is unwrapped)."""

from __future__ import annotations

from dataclasses import dataclass

import cohere
import httpx

from shared.settings import Settings

# Answer streams open at once per worker, at most (WORKER_MAX_JOBS is the usual bound).
MAX_STREAMS = 512


@dataclass(frozen=True)
class CohereClients:
    """Two SDK clients on two connection pools: ``api`` for embed and rerank, ``streams`` for answer
    streams. httpcore scans every connection of a pool on each request, so short calls must not share a
    pool with hundreds of open streams (measured: half the worker's CPU at 250 streams)."""

    api: cohere.AsyncClientV2
    streams: cohere.AsyncClientV2
    _pools: tuple[httpx.AsyncClient, ...]

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def build_cohere_clients(settings: Settings) -> CohereClients | None:
    """The async v2 clients, or None in offline mode. Retries are ours (see worker.cohere_provider), so the
    SDK's own are switched off."""
    if settings.cohere_api_key is None:
        return None
    timeout = httpx.Timeout(settings.cohere_timeout_s, connect=5.0)
    api_pool = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=64))
    # Keep-alive as large as the pool: httpcore closes idle connections while the pool holds more than
    # max_keepalive_connections connections in all (busy ones included), which would reconnect every chat.
    stream_pool = httpx.AsyncClient(
        timeout=timeout, limits=httpx.Limits(max_connections=MAX_STREAMS, max_keepalive_connections=MAX_STREAMS)
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
