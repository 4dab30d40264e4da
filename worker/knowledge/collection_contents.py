"""Reading a whole collection a batch at a time: the documents it holds, its passages' texts, one
document's outline, and copying documents' points into a new version as they are."""

from __future__ import annotations

from collections.abc import AsyncIterator

from qdrant_client import models

from worker.knowledge.qdrant_backends import QdrantBackend
from worker.knowledge.qdrant_errors import QdrantErrors

SCROLL_BATCH = 256


class CollectionContents:
    """What the collections of one alias hold, read by scrolling (never by a search)."""

    def __init__(self, backend: QdrantBackend, errors: QdrantErrors, *, alias: str) -> None:
        self._backend = backend
        self._errors = errors
        self.alias = alias

    async def documents(self, name: str) -> dict[str, str]:
        """Each document in collection ``name`` with the ``source_hash`` its points were built from."""
        found: dict[str, str] = {}
        async for records in self._scroll(name, payload=["doc", "source_hash"], vectors=False):
            for record in records:
                payload = record.payload or {}
                doc = payload.get("doc")
                if isinstance(doc, str):
                    found.setdefault(doc, str(payload.get("source_hash", "")))
        return found

    async def section_texts(self, name: str) -> AsyncIterator[list[tuple[str, str, str]]]:
        """Every passage of collection ``name`` as (title, heading path, text), a batch at a time."""
        async for records in self._scroll(name, payload=["title", "heading", "text"], vectors=False):
            yield [
                (str(p.get("title", "")), str(p.get("heading", "")), str(p.get("text", "")))
                for p in (r.payload or {} for r in records)
            ]

    async def outline(self, doc: str) -> list[tuple[str, str]]:
        """The sections of one served document in reading order, as (heading path, url), each heading once."""
        where = models.Filter(must=[models.FieldCondition(key="doc", match=models.MatchValue(value=doc))])
        chunks: list[tuple[int, str, str]] = []
        async for records in self._scroll(
            self.alias, payload=["position", "heading", "url"], vectors=False, where=where
        ):
            for record in records:
                payload = record.payload or {}
                chunks.append(
                    (int(payload.get("position", 0)), str(payload.get("heading", "")), str(payload.get("url", "")))
                )
        return _sections(chunks)

    async def outlines(self, name: str) -> dict[str, list[tuple[str, str]]]:
        """Every document's outline in collection ``name`` (as ``outline`` gives one), in one pass."""
        chunks: dict[str, list[tuple[int, str, str]]] = {}
        async for records in self._scroll(name, payload=["doc", "position", "heading", "url"], vectors=False):
            for record in records:
                payload = record.payload or {}
                doc = payload.get("doc")
                if isinstance(doc, str):
                    chunks.setdefault(doc, []).append(
                        (int(payload.get("position", 0)), str(payload.get("heading", "")), str(payload.get("url", "")))
                    )
        return {doc: _sections(found) for doc, found in chunks.items()}

    async def copy_documents(self, source: str, target: str, docs: set[str]) -> int:
        """Copy the points of ``docs`` (vectors and payload as they are) from ``source`` to ``target``."""
        copied = 0
        if not docs:
            return 0
        doc_filter = models.Filter(must=[models.FieldCondition(key="doc", match=models.MatchAny(any=sorted(docs)))])
        async for records in self._scroll(source, payload=True, vectors=True, where=doc_filter):
            points = [
                models.PointStruct(id=r.id, vector=r.vector if isinstance(r.vector, dict) else {}, payload=r.payload)
                for r in records
            ]
            await self._errors.guard(f"cannot write to {target!r}", self._backend.upsert(target, points))
            copied += len(points)
        return copied

    async def _scroll(
        self, name: str, *, payload: bool | list[str], vectors: bool, where: models.Filter | None = None
    ) -> AsyncIterator[list[models.Record]]:
        offset: models.ExtendedPointId | None = None
        while True:
            records, offset = await self._errors.guard(
                f"cannot read {name!r}",
                self._backend.scroll(
                    name,
                    scroll_filter=where,
                    limit=SCROLL_BATCH,
                    offset=offset,
                    with_payload=payload,
                    with_vectors=vectors,
                ),
            )
            if records:
                yield records
            if offset is None:
                return


def _sections(chunks: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    """(position, heading path, url) of a document's chunks as its outline: reading order, each heading once."""
    sections: dict[str, str] = {}
    for _, heading, url in sorted(chunks):
        sections.setdefault(heading, url)
    return list(sections.items())
