"""What a build of the index ends with: its report, or the error that left the serving version alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shared.jobs import ReindexMode
from worker.knowledge.qdrant_errors import KnowledgeStoreError


@dataclass(frozen=True, slots=True)
class IndexReport:
    documents: int
    chunks: int  # points in the new version
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (doc, reason)
    seconds: float = 0.0
    dense: bool = False
    collection: str | None = None
    previous: str | None = None
    mode: ReindexMode = "full"
    changed: bool = True  # False: an incremental job found nothing to do and kept the serving version


class IndexingError(RuntimeError):
    """The book could not be indexed; the serving version (if any) is untouched."""


def describe_failure(exc: BaseException) -> str:
    """The progress report's ``error``: our own errors as they are, anything else by its type only."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled; the previous version keeps serving"
    if isinstance(exc, IndexingError | KnowledgeStoreError):
        return str(exc)
    return f"unexpected error ({type(exc).__name__}); see the worker's log"
