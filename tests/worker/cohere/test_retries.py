"""How transport failures under the SDK become the safe errors a client sees (the HTTP runs on aiohttp)."""

from __future__ import annotations

import aiohttp
import httpx
import pytest

from worker.cohere.retries import classify

FAILED = "the connection to the language model failed"
TIMED_OUT = "the language model timed out"


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        # httpx_aiohttp maps every aiohttp.ClientConnectionError to ConnectTimeout: the cause tells
        (
            caused(httpx.ConnectTimeout("x"), aiohttp.ServerDisconnectedError()),
            FAILED,
        ),
        (caused(httpx.ReadTimeout("x"), aiohttp.SocketTimeoutError()), TIMED_OUT),
        (
            caused(httpx.ReadError("x"), aiohttp.ClientPayloadError("cut")),
            FAILED,
        ),
        # not mapped by the adapter at all: a malformed status line
        (
            aiohttp.ClientResponseError(None, (), status=0, message="bad status line"),
            FAILED,
        ),  # type: ignore[arg-type]
        (httpx.ReadTimeout("x"), TIMED_OUT),
        (httpx.RemoteProtocolError("x"), FAILED),
    ],
)
def test_transport_failures_are_retried_and_named_plainly(exc: BaseException, message: str) -> None:
    retryable, failure = classify(exc)
    assert retryable
    assert failure.message == message
    assert failure.code == "provider_error"


def test_anything_else_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        classify(KeyError("a bug"))
