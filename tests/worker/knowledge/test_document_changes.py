"""Which documents an incremental build re-chunks: new and changed ones; unchanged and briefly unreachable
ones keep their points; gone ones are counted as deleted."""

from __future__ import annotations

from worker.knowledge.document_changes import compare_documents, fingerprint
from worker.knowledge.sources import LoadedSource, SkippedDocument, SourceDocument


def doc(name: str, text: str) -> SourceDocument:
    return SourceDocument(doc=name, text=text)


def test_a_fingerprint_changes_with_the_text_and_with_where_it_is_published() -> None:
    a = doc("a.md", "# A\n\ntext")
    assert fingerprint(a, "/docs") == fingerprint(doc("a.md", "# A\n\ntext"), "/docs")
    assert fingerprint(a, "/docs") != fingerprint(doc("a.md", "# A\n\nother"), "/docs")
    assert fingerprint(a, "/docs") != fingerprint(a, "/book")


def test_documents_are_sorted_into_new_changed_unchanged_and_deleted() -> None:
    same, edited, added = doc("same.md", "same"), doc("edited.md", "new text"), doc("added.md", "added")
    loaded = LoadedSource(source="book", kind="folder", documents=[same, edited, added])
    fingerprints = {d.doc: fingerprint(d, "/docs") for d in loaded.documents}
    stored = {
        "same.md": fingerprints["same.md"],
        "edited.md": fingerprint(doc("edited.md", "old text"), "/docs"),
        "gone.md": "whatever",
    }
    changes = compare_documents(loaded, fingerprints, stored)
    assert changes.unchanged == {"same.md"}
    assert [d.doc for d in changes.to_chunk] == ["edited.md", "added.md"]
    assert (changes.new, changes.changed, changes.deleted) == (1, 1, 1)


def test_a_page_that_failed_for_now_keeps_its_previous_version() -> None:
    loaded = LoadedSource(
        source="site", kind="sitemap", skipped=[SkippedDocument("flaky.md", "HTTP 502", transient=True)]
    )
    changes = compare_documents(loaded, {}, {"flaky.md": "fp"})
    assert changes.unchanged == {"flaky.md"}
    assert (changes.to_chunk, changes.deleted) == ([], 0)
