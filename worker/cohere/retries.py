"""Which Cohere failures are retried, and how long to wait: exponential backoff with full jitter, at least
what a 429's ``Retry-After`` asks for."""

from __future__ import annotations

import asyncio
import logging
import random

import aiohttp
import httpx
from cohere.core.api_error import ApiError

from shared.protocol import ErrorCode
from worker.cohere.failures import ProviderFailure

logger = logging.getLogger(__name__)


def _retry_after(exc: ApiError) -> float | None:
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        pass
    return None


def classify(exc: BaseException) -> tuple[bool, ProviderFailure]:
    """(retryable, the failure to report if retries run out)."""
    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        if status == 429:
            return True, ProviderFailure(
                ErrorCode.RATE_LIMITED,
                "the language model is rate limited; try again shortly",
                _retry_after(exc),
            )
        if status >= 500:
            return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, f"the language model failed ({status})")
        return False, ProviderFailure(ErrorCode.PROVIDER_ERROR, f"the language model refused the request ({status})")
    # The HTTP runs on aiohttp (worker.cohere.client). Its adapter maps most errors to httpx's, but some
    # loosely (a dropped keep-alive connection arrives as httpx.ConnectTimeout) and some not at all (a
    # malformed status line stays aiohttp.ClientResponseError): the aiohttp cause decides when there is one.
    cause = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        if isinstance(cause, asyncio.TimeoutError):
            return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, "the language model timed out")
        return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, "the connection to the language model failed")
    if isinstance(exc, httpx.TimeoutException):
        return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, "the language model timed out")
    if isinstance(exc, httpx.TransportError):
        return True, ProviderFailure(ErrorCode.PROVIDER_ERROR, "the connection to the language model failed")
    raise exc


async def backoff(attempt: int, failure: ProviderFailure) -> None:
    """Wait before retry ``attempt + 1``."""
    delay = min(4.0, 0.25 * 2**attempt)
    delay = random.uniform(0, delay)  # full jitter: many workers must not retry in lock-step
    if failure.retry_after:
        delay = max(delay, min(failure.retry_after, 10.0))
    logger.info("cohere call failed (%s); retry %d in %.2fs", failure.message, attempt + 1, delay)
    await asyncio.sleep(delay)
