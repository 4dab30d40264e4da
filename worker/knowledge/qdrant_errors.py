"""What the store says when Qdrant fails: one line naming which Qdrant and why, never with a key.

The same wording serves ``/ready``'s status, the re-index's failure and the worker's log, so an operator
reads one sentence everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TypeVar

from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

T = TypeVar("T")


class KnowledgeStoreError(RuntimeError):
    """Qdrant could not do what was asked; the message says where and why (never with a key)."""


class QdrantErrors:
    """Describes failures of the Qdrant at ``location`` (a server when ``remote``), masking ``secrets``."""

    def __init__(self, location: str, *, remote: bool, secrets: Sequence[str] = ()) -> None:
        self.location = location
        self._remote = remote
        self._secrets = [s for s in secrets if s]

    def describe(self, exc: BaseException) -> str:
        where = f"Qdrant at {self.location}"
        if isinstance(exc, UnexpectedResponse):
            code = exc.status_code
            if code in {401, 403}:
                message = f"{where} refused the request (HTTP {code}): check QDRANT_API_KEY"
            else:
                message = f"{where} answered HTTP {code} {exc.reason_phrase}".rstrip()
        else:
            cause = exc.source if isinstance(exc, ResponseHandlingException) else exc
            lines = str(cause).strip().splitlines()
            reason = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
            failed = f"cannot reach {where}" if self._remote else f"{where} failed"
            message = f"{failed}: {reason}"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    async def guard(self, what: str, call: Awaitable[T]) -> T:
        """``call``'s result, or ``KnowledgeStoreError`` saying ``what`` failed and why."""
        try:
            return await call
        except Exception as exc:
            raise KnowledgeStoreError(f"{what}: {self.describe(exc)}") from exc
