"""The one error a provider call ends in, with what the client may see.

Its own module, free of the SDK and of the knowledge base, so that indexing can handle it without
importing the provider (which imports the knowledge base's passages).
"""

from __future__ import annotations

from shared.protocol import ErrorCode


class ProviderFailure(Exception):
    """Cohere could not answer; ``code`` and ``retry_after`` go to the client as a safe error."""

    def __init__(self, code: ErrorCode, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
