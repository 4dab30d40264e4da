"""Which documents changed since the serving version, so an incremental build re-chunks only those.

Each point carries its document's fingerprint (``source_hash``): the text, where it is published, and the
chunker's version. A document whose fingerprint matches is copied over as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from worker.knowledge.sources import LoadedSource, SourceDocument

CHUNKER_VERSION = "1"  # bump when chunking changes, so incremental jobs re-chunk every document


def fingerprint(document: SourceDocument, base_url: str) -> str:
    """What a document's points were built from: text, where it is published, and the chunker's version."""
    digest = hashlib.sha256()
    for part in (CHUNKER_VERSION, base_url, document.page_url or "", document.title or "", document.text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class DocumentChanges:
    unchanged: set[str]  # documents whose points are copied from the serving version
    to_chunk: list[SourceDocument]  # new and changed documents
    new: int
    changed: int
    deleted: int  # documents of the serving version that are gone from the source


def compare_documents(
    loaded: LoadedSource, fingerprints: Mapping[str, str], stored: Mapping[str, str]
) -> DocumentChanges:
    """Compare this reading of the source (``fingerprints`` by document) with the serving version's
    (``stored``). A page that could not be fetched this time keeps its previous version."""
    unchanged = {doc for doc, fp in fingerprints.items() if stored.get(doc) == fp}
    unchanged |= {s.doc for s in loaded.skipped if s.transient and s.doc in stored}
    to_chunk = [d for d in loaded.documents if d.doc not in unchanged]
    new = sum(1 for d in to_chunk if d.doc not in stored)
    return DocumentChanges(
        unchanged=unchanged,
        to_chunk=to_chunk,
        new=new,
        changed=len(to_chunk) - new,
        deleted=len(set(stored) - set(fingerprints) - unchanged),
    )
