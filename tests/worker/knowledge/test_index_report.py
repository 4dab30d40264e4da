"""How a failed build is described in its progress report: our own errors as written, anything else by its
type only (its text may hold paths or secrets)."""

from __future__ import annotations

import asyncio

from worker.knowledge.index_report import IndexingError, describe_failure
from worker.knowledge.qdrant_errors import KnowledgeStoreError


def test_failures_are_described_without_leaking_unexpected_text() -> None:
    assert describe_failure(IndexingError("the folder holds no Markdown")) == "the folder holds no Markdown"
    assert describe_failure(KnowledgeStoreError("cannot reach Qdrant at q:443")) == "cannot reach Qdrant at q:443"
    assert describe_failure(asyncio.CancelledError()) == "cancelled; the previous version keeps serving"
    unexpected = describe_failure(OSError("/secret/path/file: permission denied"))
    assert unexpected == "unexpected error (OSError); see the worker's log"
